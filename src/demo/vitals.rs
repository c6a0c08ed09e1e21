//! The demo patient's physiology: growth, weight trend and blood pressure over age, per-visit vital
//! signs (kept inside physiologically possible ranges), and laboratory values that follow the
//! patient's problems and treatment, with their reference ranges.

use chrono::NaiveDate;

use super::data::{
    CHOLESTEROL, CREATININE, GLUCOSE, HBA1C, HDL, HEMOGLOBIN, LDL, Lab, PLATELETS, POTASSIUM, SODIUM, TRIGLYCERIDES,
    TSH, WBC,
};
use super::fhir::round_to;
use super::rng::Rng;
use super::time::age_years;

/// Fraction of adult height reached at ages 0..=18 (interpolated in between).
const HEIGHT_FRACTION: [f64; 19] = [
    0.29, 0.435, 0.50, 0.555, 0.595, 0.635, 0.67, 0.70, 0.73, 0.76, 0.79, 0.82, 0.86, 0.90, 0.94, 0.97, 0.985, 0.995,
    1.0,
];
/// Median BMI at ages 0..=18.
const CHILD_BMI: [f64; 19] =
    [13.4, 17.0, 16.4, 15.9, 15.6, 15.4, 15.4, 15.6, 15.9, 16.4, 16.9, 17.5, 18.1, 18.7, 19.3, 19.9, 20.4, 20.9, 21.4];

/// Hard limits the generator never leaves (the server rejects values outside physiology).
pub(crate) const HR_RANGE: (f64, f64) = (40.0, 140.0);
pub(crate) const RR_RANGE: (f64, f64) = (10.0, 30.0);
pub(crate) const TEMP_RANGE: (f64, f64) = (35.5, 39.5);
pub(crate) const SPO2_RANGE: (f64, f64) = (88.0, 100.0);
pub(crate) const WEIGHT_RANGE: (f64, f64) = (3.0, 200.0);
pub(crate) const HEIGHT_RANGE: (f64, f64) = (45.0, 200.0);

fn interpolate(table: &[f64; 19], age: f64) -> f64 {
    if age <= 0.0 {
        return table[0];
    }
    if age >= 18.0 {
        return table[18];
    }
    let i = age.floor() as usize;
    let f = age - i as f64;
    table[i] + (table[i + 1] - table[i]) * f
}

/// Persistent per-patient physiology.
#[derive(Clone, Debug)]
pub(crate) struct Physiology {
    female: bool,
    birth: NaiveDate,
    adult_height: f64,
    bmi_z: f64,
    /// Adult BMI today (before clamping into a sensible band).
    pub bmi_base: f64,
    /// Adult BMI change per year.
    bmi_trend: f64,
    bp_z: f64,
    hr_z: f64,
    lab_z: [f64; 13],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Treatment {
    Absent,
    Untreated,
    Treated,
}

/// What shapes the vital signs of one visit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct VisitState {
    pub febrile: bool,
    pub emergency: bool,
    pub respiratory: bool,
    pub copd: bool,
    pub afib: bool,
    pub hypertension: Treatment,
    pub pain: (i64, i64),
}

#[derive(Clone, Debug)]
pub(crate) struct Vitals {
    /// Systolic/diastolic (not measured under 3 years of age).
    pub bp: Option<(i64, i64)>,
    pub hr: i64,
    pub rr: i64,
    pub temp: f64,
    pub spo2: i64,
    pub weight: f64,
    pub height: f64,
    pub bmi: f64,
    pub pain: i64,
}

/// What shapes the laboratory values of one visit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LabState {
    pub age: i32,
    pub diabetes: Treatment,
    pub hyperlipidemia: Treatment,
    pub hypothyroid: Treatment,
    pub ckd: bool,
    pub anemia: bool,
    pub infection: bool,
    pub dehydrated: bool,
    pub obese: bool,
    pub fasting: bool,
}

impl Physiology {
    pub(crate) fn new(rng: &mut Rng, female: bool, birth: NaiveDate) -> Physiology {
        let adult_height = if female { 162.5 + 6.5 * rng.normal() } else { 176.0 + 7.0 * rng.normal() };
        let bmi_z = rng.normal();
        let bmi_base = (26.8 + 5.0 * bmi_z).clamp(17.5, 48.0);
        let bmi_trend = 0.12 + 0.35 * rng.normal();
        let mut lab_z = [0.0; 13];
        for z in &mut lab_z {
            *z = rng.normal();
        }
        Physiology {
            female,
            birth,
            adult_height: adult_height.clamp(140.0, 198.0),
            bmi_z,
            bmi_base,
            bmi_trend,
            bp_z: rng.normal(),
            hr_z: rng.normal(),
            lab_z,
        }
    }

    pub(crate) fn height_at(&self, on: NaiveDate) -> f64 {
        let age = age_years(self.birth, on);
        let h = if age < 18.0 {
            self.adult_height * interpolate(&HEIGHT_FRACTION, age)
        } else {
            self.adult_height - 0.15 * (age - 60.0).max(0.0)
        };
        h.clamp(HEIGHT_RANGE.0, HEIGHT_RANGE.1)
    }

    /// BMI trend at `on` (before per-visit noise); `today` anchors the adult trend.
    pub(crate) fn bmi_at(&self, on: NaiveDate, today: NaiveDate) -> f64 {
        let age = age_years(self.birth, on);
        let child = interpolate(&CHILD_BMI, age) * (1.0 + 0.1 * self.bmi_z);
        let adult = self.bmi_base + self.bmi_trend * age_years(today, on);
        if age < 18.0 {
            child
        } else if age < 21.0 {
            let w = (age - 18.0) / 3.0;
            child * (1.0 - w) + adult * w
        } else {
            adult
        }
        .clamp(11.0, 55.0)
    }

    pub(crate) fn vitals(&self, rng: &mut Rng, on: NaiveDate, today: NaiveDate, state: &VisitState) -> Vitals {
        let age = age_years(self.birth, on);
        let height = round_to(self.height_at(on), 1);
        let bmi_trend = self.bmi_at(on, today) + 0.25 * rng.normal();
        let weight =
            round_to((bmi_trend * (height / 100.0) * (height / 100.0)).clamp(WEIGHT_RANGE.0, WEIGHT_RANGE.1), 1);
        let bmi = round_to(weight / ((height / 100.0) * (height / 100.0)), 1);

        let bp = (age >= 3.0).then(|| {
            let mut sbp = if age < 18.0 { 88.0 + 1.6 * age } else { 108.0 + 0.45 * (age - 18.0) + 0.6 * (bmi - 25.0) };
            sbp += 6.0 * self.bp_z + 6.0 * rng.normal();
            sbp += match state.hypertension {
                Treatment::Untreated => 20.0,
                Treatment::Treated => 6.0,
                Treatment::Absent => 0.0,
            };
            if state.emergency {
                sbp += 6.0;
            }
            let sbp = sbp.clamp(80.0, 210.0).round();
            let dbp =
                if age < 18.0 { 0.55 * sbp + 5.0 } else { 0.42 * sbp + 24.0 } + 3.0 * self.bp_z + 4.0 * rng.normal();
            let dbp = dbp.clamp(40.0, 125.0).min(sbp - 15.0).round();
            (sbp as i64, dbp as i64)
        });

        let hr_base = match age {
            a if a < 1.0 => 128.0,
            a if a < 3.0 => 112.0,
            a if a < 6.0 => 100.0,
            a if a < 12.0 => 88.0,
            a if a < 18.0 => 78.0,
            _ => 72.0,
        };
        let hr = hr_base
            + 6.0 * self.hr_z
            + 5.0 * rng.normal()
            + if state.febrile { 10.0 } else { 0.0 }
            + if state.emergency { 8.0 } else { 0.0 }
            + if state.afib { 10.0 + 6.0 * rng.normal().abs() } else { 0.0 };
        let rr_base = match age {
            a if a < 1.0 => 30.0,
            a if a < 3.0 => 26.0,
            a if a < 6.0 => 22.0,
            a if a < 12.0 => 20.0,
            a if a < 18.0 => 17.0,
            _ => 16.0,
        };
        let rr = rr_base
            + 1.5 * rng.normal()
            + if state.respiratory { 5.0 } else { 0.0 }
            + if state.febrile { 2.0 } else { 0.0 };
        let temp = if state.febrile { 38.0 + 0.45 * rng.normal().abs() } else { 36.75 + 0.2 * rng.normal() };
        let spo2 = 98.0 + rng.normal() - if state.copd { 3.0 } else { 0.0 } - if state.respiratory { 5.0 } else { 0.0 };
        let pain = rng.range(state.pain.0, state.pain.1);

        Vitals {
            bp,
            hr: hr.clamp(HR_RANGE.0, HR_RANGE.1).round() as i64,
            rr: rr.clamp(RR_RANGE.0, RR_RANGE.1).round() as i64,
            temp: round_to(temp.clamp(TEMP_RANGE.0, TEMP_RANGE.1), 1),
            spo2: spo2.clamp(SPO2_RANGE.0, SPO2_RANGE.1).round() as i64,
            weight,
            height,
            bmi,
            pain: pain.clamp(0, 10),
        }
    }

    /// A result for `lab` (rounded to the lab's decimals).
    pub(crate) fn lab_value(&self, rng: &mut Rng, lab: &Lab, s: &LabState) -> f64 {
        let treated = |t: Treatment, untreated: f64, on_treatment: f64, absent: f64| match t {
            Treatment::Untreated => untreated,
            Treatment::Treated => on_treatment,
            Treatment::Absent => absent,
        };
        let child = s.age < 13;
        // (mean, sd, persistent-offset slot)
        let (mean, sd, slot) = match lab.loinc {
            l if l == GLUCOSE.loinc => {
                let m = treated(s.diabetes, 165.0, 128.0, if s.obese { 96.0 } else { 88.0 });
                (m + if s.fasting { 0.0 } else { 18.0 }, if s.diabetes == Treatment::Absent { 8.0 } else { 22.0 }, 0)
            }
            l if l == HBA1C.loinc => (treated(s.diabetes, 8.1, 7.0, if s.obese { 5.7 } else { 5.3 }), 0.35, 1),
            l if l == CREATININE.loinc => {
                let base = if child {
                    0.45
                } else if self.female {
                    0.78
                } else {
                    0.98
                };
                let m = base
                    + if s.ckd { 0.75 } else { 0.0 }
                    + if s.dehydrated { 0.3 } else { 0.0 }
                    + if s.age >= 70 { 0.08 } else { 0.0 };
                (m, if child { 0.08 } else { 0.12 }, 2)
            }
            l if l == SODIUM.loinc => (if s.dehydrated { 146.0 } else { 140.0 }, 2.0, 3),
            l if l == POTASSIUM.loinc => (if s.ckd { 4.7 } else { 4.2 }, 0.3, 4),
            l if l == CHOLESTEROL.loinc => (treated(s.hyperlipidemia, 238.0, 178.0, 182.0), 22.0, 5),
            l if l == HDL.loinc => (if self.female { 60.0 } else { 48.0 } - if s.obese { 6.0 } else { 0.0 }, 9.0, 6),
            l if l == LDL.loinc => (treated(s.hyperlipidemia, 158.0, 92.0, 105.0), 18.0, 7),
            l if l == TRIGLYCERIDES.loinc => (
                120.0 + if s.obese { 45.0 } else { 0.0 } + if s.diabetes != Treatment::Absent { 40.0 } else { 0.0 },
                35.0,
                8,
            ),
            l if l == HEMOGLOBIN.loinc => {
                let m = if child {
                    12.4
                } else if self.female {
                    13.4
                } else {
                    15.0
                };
                (m - if s.anemia { 2.4 } else { 0.0 }, 0.7, 9)
            }
            l if l == WBC.loinc => (if s.infection { 13.5 } else { 7.0 }, 1.4, 10),
            l if l == PLATELETS.loinc => (255.0, 45.0, 11),
            l if l == TSH.loinc => (treated(s.hypothyroid, 7.8, 2.1, 1.8), 0.6, 12),
            _ => (0.0, 0.0, 0),
        };
        let value = mean + sd * (0.6 * self.lab_z[slot] + 0.6 * rng.normal());
        round_to(value.max(lab_floor(lab)), lab.decimals)
    }

    /// Reference range (low, high) for `lab` for this patient at `age`.
    pub(crate) fn reference_range(&self, lab: &Lab, age: i32) -> (Option<f64>, Option<f64>) {
        let child = age < 13;
        match lab.loinc {
            l if l == GLUCOSE.loinc => (Some(70.0), Some(99.0)),
            l if l == HBA1C.loinc => (Some(4.0), Some(5.6)),
            l if l == CREATININE.loinc && child => (Some(0.3), Some(0.7)),
            l if l == CREATININE.loinc && self.female => (Some(0.5), Some(1.1)),
            l if l == CREATININE.loinc => (Some(0.7), Some(1.3)),
            l if l == SODIUM.loinc => (Some(135.0), Some(145.0)),
            l if l == POTASSIUM.loinc => (Some(3.5), Some(5.1)),
            l if l == CHOLESTEROL.loinc => (None, Some(200.0)),
            l if l == HDL.loinc => (Some(40.0), None),
            l if l == LDL.loinc => (None, Some(100.0)),
            l if l == TRIGLYCERIDES.loinc => (None, Some(150.0)),
            l if l == HEMOGLOBIN.loinc && child => (Some(11.0), Some(14.5)),
            l if l == HEMOGLOBIN.loinc && self.female => (Some(12.0), Some(15.5)),
            l if l == HEMOGLOBIN.loinc => (Some(13.5), Some(17.5)),
            l if l == WBC.loinc => (Some(4.5), Some(11.0)),
            l if l == PLATELETS.loinc => (Some(150.0), Some(400.0)),
            l if l == TSH.loinc => (Some(0.4), Some(4.0)),
            _ => (None, None),
        }
    }
}

/// The smallest plausible result (values never go negative or to zero).
fn lab_floor(lab: &Lab) -> f64 {
    match lab.loinc {
        l if l == TSH.loinc => 0.05,
        l if l == CREATININE.loinc => 0.2,
        l if l == HBA1C.loinc => 3.8,
        l if l == GLUCOSE.loinc => 55.0,
        l if l == HEMOGLOBIN.loinc => 7.0,
        l if l == WBC.loinc => 2.0,
        l if l == PLATELETS.loinc => 60.0,
        l if l == HDL.loinc => 20.0,
        l if l == LDL.loinc || l == TRIGLYCERIDES.loinc => 30.0,
        l if l == CHOLESTEROL.loinc => 100.0,
        l if l == POTASSIUM.loinc => 2.8,
        l if l == SODIUM.loinc => 125.0,
        _ => 0.0,
    }
}
