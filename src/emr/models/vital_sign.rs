//! Vital signs (seed 003 `vitals`, seed 001 `Vital`): one model per measurement, each becoming
//! one FHIR Observation of the vital-signs profile.

use super::common::{FhirDateTime, SourceResource};

code_enum! {
    /// FHIR `Observation.status`.
    #[derive(Default)]
    pub enum ObservationStatus {
        Registered = "registered",
        Preliminary = "preliminary",
        #[default]
        Final = "final",
        Amended = "amended",
        Corrected = "corrected",
        Cancelled = "cancelled",
        EnteredInError = "entered-in-error",
        Unknown = "unknown",
    }
}

code_enum! {
    /// Body temperature units, as UCUM codes.
    pub enum TemperatureUnit {
        Celsius = "Cel",
        Fahrenheit = "[degF]",
    }
}

code_enum! {
    /// Body weight units, as UCUM codes.
    pub enum WeightUnit {
        Kilogram = "kg",
        Pound = "[lb_av]",
    }
}

code_enum! {
    /// Body height units, as UCUM codes.
    pub enum HeightUnit {
        Centimetre = "cm",
        Inch = "[in_i]",
    }
}

/// A 0-10 pain score (LOINC 72514-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PainScore(u8);

impl PainScore {
    pub const MAX: u8 = 10;

    pub fn new(score: u8) -> Option<Self> {
        (score <= Self::MAX).then_some(PainScore(score))
    }

    pub fn value(self) -> u8 {
        self.0
    }
}

/// LOINC codes of the vital signs, with their display names.
pub mod loinc {
    pub const BLOOD_PRESSURE_PANEL: &str = "85354-9";
    pub const SYSTOLIC: &str = "8480-6";
    pub const DIASTOLIC: &str = "8462-4";
    pub const HEART_RATE: &str = "8867-4";
    pub const RESPIRATORY_RATE: &str = "9279-1";
    pub const BODY_TEMPERATURE: &str = "8310-5";
    pub const OXYGEN_SATURATION_PULSE_OXIMETRY: &str = "59408-5";
    pub const OXYGEN_SATURATION: &str = "2708-6";
    pub const BODY_WEIGHT: &str = "29463-7";
    pub const BODY_HEIGHT: &str = "8302-2";
    pub const BMI: &str = "39156-5";
    pub const PAIN_SEVERITY: &str = "72514-3";

    /// Every vital-sign LOINC code Kiln knows, with its display name.
    pub const DISPLAY: &[(&str, &str)] = &[
        (BLOOD_PRESSURE_PANEL, "Blood pressure panel with all children optional"),
        (SYSTOLIC, "Systolic blood pressure"),
        (DIASTOLIC, "Diastolic blood pressure"),
        (HEART_RATE, "Heart rate"),
        (RESPIRATORY_RATE, "Respiratory rate"),
        (BODY_TEMPERATURE, "Body temperature"),
        (OXYGEN_SATURATION_PULSE_OXIMETRY, "Oxygen saturation in Arterial blood by Pulse oximetry"),
        (OXYGEN_SATURATION, "Oxygen saturation in Arterial blood"),
        (BODY_WEIGHT, "Body weight"),
        (BODY_HEIGHT, "Body height"),
        (BMI, "Body mass index (BMI) [Ratio]"),
        (PAIN_SEVERITY, "Pain severity - 0-10 verbal numeric rating [Score] - Reported"),
    ];

    pub fn display(code: &str) -> Option<&'static str> {
        DISPLAY.iter().find(|(c, _)| *c == code).map(|(_, d)| *d)
    }

    pub fn is_vital(code: &str) -> bool {
        display(code).is_some()
    }
}

code_enum! {
    /// The kinds of vital sign, each with the LOINC code its Observation carries.
    pub enum VitalKind {
        BloodPressure = "85354-9",
        HeartRate = "8867-4",
        RespiratoryRate = "9279-1",
        BodyTemperature = "8310-5",
        OxygenSaturation = "59408-5",
        BodyWeight = "29463-7",
        BodyHeight = "8302-2",
        Bmi = "39156-5",
        Pain = "72514-3",
    }
}

impl VitalKind {
    /// The kind a LOINC code stands for; both oxygen saturation codes count.
    pub fn from_loinc(code: &str) -> Option<Self> {
        match code {
            loinc::OXYGEN_SATURATION => Some(VitalKind::OxygenSaturation),
            other => VitalKind::parse(other),
        }
    }
}

/// One measurement; each kind has its LOINC code and UCUM unit(s).
#[derive(Debug, Clone, PartialEq)]
pub enum VitalMeasurement {
    /// mm[Hg]; either side may be missing (the profile allows a dataAbsentReason).
    BloodPressure {
        systolic: Option<f64>,
        diastolic: Option<f64>,
    },
    /// /min
    HeartRate(f64),
    /// /min
    RespiratoryRate(f64),
    BodyTemperature {
        value: f64,
        unit: TemperatureUnit,
    },
    /// %
    OxygenSaturation(f64),
    BodyWeight {
        value: f64,
        unit: WeightUnit,
    },
    BodyHeight {
        value: f64,
        unit: HeightUnit,
    },
    /// kg/m2
    Bmi(f64),
    Pain(PainScore),
}

impl VitalMeasurement {
    pub fn kind(&self) -> VitalKind {
        match self {
            VitalMeasurement::BloodPressure { .. } => VitalKind::BloodPressure,
            VitalMeasurement::HeartRate(_) => VitalKind::HeartRate,
            VitalMeasurement::RespiratoryRate(_) => VitalKind::RespiratoryRate,
            VitalMeasurement::BodyTemperature { .. } => VitalKind::BodyTemperature,
            VitalMeasurement::OxygenSaturation(_) => VitalKind::OxygenSaturation,
            VitalMeasurement::BodyWeight { .. } => VitalKind::BodyWeight,
            VitalMeasurement::BodyHeight { .. } => VitalKind::BodyHeight,
            VitalMeasurement::Bmi(_) => VitalKind::Bmi,
            VitalMeasurement::Pain(_) => VitalKind::Pain,
        }
    }

    /// The LOINC code of the Observation.
    pub fn loinc(&self) -> &'static str {
        self.kind().code()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct VitalSign {
    pub id: Option<String>,
    pub status: ObservationStatus,
    pub patient: Option<String>,
    /// `visit_id` (`Encounter/…`).
    pub encounter: Option<String>,
    /// `recorded_at`.
    pub recorded_at: Option<FhirDateTime>,
    /// `recorded_by` (`Practitioner/…`).
    pub recorded_by: Option<String>,
    pub measurement: VitalMeasurement,
    pub notes: Option<String>,
    pub source: SourceResource,
}

impl VitalSign {
    pub fn new(measurement: VitalMeasurement) -> Self {
        VitalSign {
            id: None,
            status: ObservationStatus::default(),
            patient: None,
            encounter: None,
            recorded_at: None,
            recorded_by: None,
            measurement,
            notes: None,
            source: SourceResource::default(),
        }
    }
}

/// One row of the seed 003 `vitals` table, which holds every measurement in one row.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VitalsRow {
    pub systolic_bp: Option<u32>,
    pub diastolic_bp: Option<u32>,
    pub heart_rate: Option<u32>,
    pub respiratory_rate: Option<u32>,
    pub temperature: Option<f64>,
    /// `F` or `C`; the seed default is `F`.
    pub temperature_unit: Option<TemperatureUnit>,
    pub oxygen_saturation: Option<u32>,
    pub weight: Option<f64>,
    /// The seed default is pounds.
    pub weight_unit: Option<WeightUnit>,
    pub height_feet: Option<u32>,
    pub height_inches: Option<u32>,
    pub height_cm: Option<u32>,
    pub bmi: Option<f64>,
    pub pain_scale: Option<PainScore>,
}

impl VitalsRow {
    /// The separate measurements of the row, one per future Observation. Height in feet and
    /// inches becomes inches; a centimetre height wins when both are given.
    pub fn measurements(&self) -> Vec<VitalMeasurement> {
        let mut out = Vec::new();
        if self.systolic_bp.is_some() || self.diastolic_bp.is_some() {
            out.push(VitalMeasurement::BloodPressure {
                systolic: self.systolic_bp.map(f64::from),
                diastolic: self.diastolic_bp.map(f64::from),
            });
        }
        if let Some(hr) = self.heart_rate {
            out.push(VitalMeasurement::HeartRate(f64::from(hr)));
        }
        if let Some(rr) = self.respiratory_rate {
            out.push(VitalMeasurement::RespiratoryRate(f64::from(rr)));
        }
        if let Some(value) = self.temperature {
            let unit = self.temperature_unit.unwrap_or(TemperatureUnit::Fahrenheit);
            out.push(VitalMeasurement::BodyTemperature { value, unit });
        }
        if let Some(spo2) = self.oxygen_saturation {
            out.push(VitalMeasurement::OxygenSaturation(f64::from(spo2)));
        }
        if let Some(value) = self.weight {
            let unit = self.weight_unit.unwrap_or(WeightUnit::Pound);
            out.push(VitalMeasurement::BodyWeight { value, unit });
        }
        if let Some(cm) = self.height_cm {
            out.push(VitalMeasurement::BodyHeight { value: f64::from(cm), unit: HeightUnit::Centimetre });
        } else if self.height_feet.is_some() || self.height_inches.is_some() {
            let inches = self.height_feet.unwrap_or(0) * 12 + self.height_inches.unwrap_or(0);
            out.push(VitalMeasurement::BodyHeight { value: f64::from(inches), unit: HeightUnit::Inch });
        }
        if let Some(bmi) = self.bmi {
            out.push(VitalMeasurement::Bmi(bmi));
        }
        if let Some(pain) = self.pain_scale {
            out.push(VitalMeasurement::Pain(pain));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pain_score_stops_at_ten() {
        assert_eq!(PainScore::new(10).map(PainScore::value), Some(10));
        assert_eq!(PainScore::new(11), None);
    }

    #[test]
    fn a_vitals_row_splits_into_one_measurement_per_observation() {
        let row = VitalsRow {
            systolic_bp: Some(120),
            diastolic_bp: Some(80),
            heart_rate: Some(72),
            temperature: Some(98.6),
            height_feet: Some(5),
            height_inches: Some(10),
            pain_scale: PainScore::new(3),
            ..Default::default()
        };
        let m = row.measurements();
        assert_eq!(m.len(), 5);
        assert_eq!(m[0], VitalMeasurement::BloodPressure { systolic: Some(120.0), diastolic: Some(80.0) });
        assert_eq!(m[2], VitalMeasurement::BodyTemperature { value: 98.6, unit: TemperatureUnit::Fahrenheit });
        assert_eq!(m[3], VitalMeasurement::BodyHeight { value: 70.0, unit: HeightUnit::Inch });
        assert_eq!(m[4].loinc(), loinc::PAIN_SEVERITY);
    }

    #[test]
    fn vital_kinds_agree_with_the_loinc_table() {
        for kind in VitalKind::ALL {
            assert!(loinc::is_vital(kind.code()), "{kind}");
        }
        assert_eq!(VitalKind::from_loinc(loinc::OXYGEN_SATURATION), Some(VitalKind::OxygenSaturation));
        assert_eq!(VitalKind::from_loinc(loinc::SYSTOLIC), None);
    }
}
