//! Built-in reference lists for the demo generator: names and places, the clinic's practitioners and
//! payors, and the coded clinical vocabularies (ICD-10-CM problems, RxNorm medications, LOINC labs,
//! allergens). Codes are real, common codes with their standard displays; people and organisations
//! are fictional.

pub(crate) const SYS_LOINC: &str = "http://loinc.org";
pub(crate) const SYS_SNOMED: &str = "http://snomed.info/sct";
pub(crate) const SYS_ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub(crate) const SYS_RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub(crate) const SYS_UCUM: &str = "http://unitsofmeasure.org";
pub(crate) const SYS_NPI: &str = "http://hl7.org/fhir/sid/us-npi";
pub(crate) const SYS_SSN: &str = "http://hl7.org/fhir/sid/us-ssn";
/// DEA registration numbers (HL7 OID 2.16.840.1.113883.4.814).
pub(crate) const SYS_DEA: &str = "urn:oid:2.16.840.1.113883.4.814";
pub(crate) const SYS_MRN: &str = "urn:kiln:demo:mrn";
pub(crate) const SYS_LICENSE: &str = "urn:kiln:demo:license:oh";
pub(crate) const SYS_NUCC: &str = "http://nucc.org/provider-taxonomy";
pub(crate) const SYS_V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
pub(crate) const SYS_V2_0131: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";
pub(crate) const SYS_V2_0276: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
pub(crate) const SYS_V2_0360: &str = "http://terminology.hl7.org/CodeSystem/v2-0360|2.7";
pub(crate) const SYS_V2_0074: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
pub(crate) const SYS_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub(crate) const SYS_ACT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v3-ActReason";
pub(crate) const SYS_ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
pub(crate) const SYS_PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
pub(crate) const SYS_MARITAL: &str = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus";
pub(crate) const SYS_INTERPRETATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
pub(crate) const SYS_OBS_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
pub(crate) const SYS_CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
pub(crate) const SYS_CONDITION_VER: &str = "http://terminology.hl7.org/CodeSystem/condition-ver-status";
pub(crate) const SYS_CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
pub(crate) const SYS_ALLERGY_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical";
pub(crate) const SYS_ALLERGY_VER: &str = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification";
pub(crate) const SYS_CONSENT_SCOPE: &str = "http://terminology.hl7.org/CodeSystem/consentscope";
pub(crate) const SYS_RESOURCE_TYPES: &str = "http://hl7.org/fhir/resource-types";
pub(crate) const SYS_COVERAGE_CLASS: &str = "http://terminology.hl7.org/CodeSystem/coverage-class";
pub(crate) const SYS_SUBSCRIBER_REL: &str = "http://terminology.hl7.org/CodeSystem/subscriber-relationship";
pub(crate) const SYS_COPAY_TYPE: &str = "http://terminology.hl7.org/CodeSystem/coverage-copay-type";
pub(crate) const SYS_CANCEL_REASON: &str = "http://terminology.hl7.org/CodeSystem/appointment-cancellation-reason";
pub(crate) const SYS_PRACTITIONER_ROLE: &str = "http://terminology.hl7.org/CodeSystem/practitioner-role";
pub(crate) const SYS_LOCATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/location-physical-type";
pub(crate) const SYS_ORG_TYPE: &str = "http://terminology.hl7.org/CodeSystem/organization-type";
pub(crate) const SYS_ADMIT_SOURCE: &str = "http://terminology.hl7.org/CodeSystem/admit-source";
pub(crate) const SYS_DISCHARGE: &str = "http://terminology.hl7.org/CodeSystem/discharge-disposition";
pub(crate) const SYS_ACT_PRIORITY: &str = "http://terminology.hl7.org/CodeSystem/v3-ActPriority";
pub(crate) const SYS_MED_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/medicationrequest-category";
pub(crate) const SYS_COURSE: &str = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy";
pub(crate) const SYS_LANGUAGE: &str = "urn:ietf:bcp:47";

// ---------------------------------------------------------------------------------------------
// People and places

#[rustfmt::skip]
pub(crate) const MALE_NAMES: &[&str] = &[
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Christopher",
    "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Andrew", "Paul", "Joshua", "Kenneth",
    "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason", "Edward", "Jeffrey", "Ryan", "Jacob", "Gary",
    "Nicholas", "Eric", "Jonathan", "Stephen", "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Samuel",
    "Gregory", "Alexander", "Patrick", "Frank", "Raymond", "Jack", "Dennis", "Jerry", "Tyler", "Aaron", "Jose",
    "Adam", "Nathan", "Henry", "Zachary", "Douglas", "Peter", "Kyle", "Noah", "Ethan", "Jeremy", "Walter",
    "Christian", "Keith", "Roger", "Terry", "Austin", "Sean", "Gerald", "Carl", "Harold", "Dylan", "Arthur",
    "Lawrence", "Jordan", "Jesse", "Bryan", "Billy", "Bruce", "Gabriel", "Joe", "Logan", "Alan", "Juan", "Albert",
    "Willie", "Elijah", "Wayne", "Randy", "Vincent", "Mason", "Roy", "Ralph", "Bobby", "Russell", "Bradley",
    "Philip", "Eugene", "Liam", "Lucas", "Oliver", "Mateo", "Luis", "Carlos", "Miguel", "Darnell", "Malik", "Andre",
    "Wei", "Arjun", "Omar", "Hiroshi", "Minh",
];

#[rustfmt::skip]
pub(crate) const FEMALE_NAMES: &[&str] = &[
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen", "Lisa",
    "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna", "Michelle", "Carol", "Amanda",
    "Melissa", "Deborah", "Stephanie", "Dorothy", "Rebecca", "Sharon", "Laura", "Cynthia", "Amy", "Kathleen",
    "Angela", "Shirley", "Brenda", "Emma", "Anna", "Pamela", "Nicole", "Samantha", "Katherine", "Christine",
    "Helen", "Debra", "Rachel", "Carolyn", "Janet", "Maria", "Catherine", "Heather", "Diane", "Olivia", "Julie",
    "Joyce", "Victoria", "Ruth", "Virginia", "Lauren", "Kelly", "Christina", "Joan", "Evelyn", "Judith", "Andrea",
    "Hannah", "Megan", "Cheryl", "Jacqueline", "Martha", "Madison", "Teresa", "Gloria", "Sara", "Janice", "Ann",
    "Kathryn", "Abigail", "Sophia", "Frances", "Jean", "Alice", "Judy", "Isabella", "Julia", "Grace", "Amber",
    "Denise", "Danielle", "Marilyn", "Beverly", "Charlotte", "Natalie", "Theresa", "Diana", "Brittany", "Doris",
    "Kayla", "Alexis", "Lori", "Marie", "Ava", "Mia", "Harper", "Camila", "Lucia", "Sofia", "Aaliyah", "Keisha",
    "Mei", "Priya", "Fatima", "Yuki", "Linh",
];

#[rustfmt::skip]
pub(crate) const NEUTRAL_NAMES: &[&str] = &[
    "Alex", "Jordan", "Taylor", "Casey", "Riley", "Morgan", "Avery", "Quinn", "Jamie", "Rowan", "Sage", "Skyler",
    "Emerson", "Reese", "Finley", "Dakota",
];

#[rustfmt::skip]
pub(crate) const FAMILY_NAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker",
    "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz",
    "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers",
    "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim",
    "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza",
    "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
    "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson",
    "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton",
    "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson",
    "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison",
    "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman",
    "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black",
    "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza",
    "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn",
    "Kowalski", "Schneider", "Novak", "Yamamoto", "Singh", "Okafor", "Haddad", "Larsen", "O'Connor",
];

#[rustfmt::skip]
pub(crate) const STREETS: &[&str] = &[
    "Maple Avenue", "Oak Street", "Elm Street", "High Street", "Broad Street", "Main Street", "Cedar Lane",
    "Park Avenue", "Walnut Street", "Washington Avenue", "Lincoln Road", "Sunbury Road", "Riverside Drive",
    "Hamilton Road", "Cleveland Avenue", "Karl Road", "Morse Road", "Livingston Avenue", "Parsons Avenue",
    "Summit Street", "Indianola Avenue", "Neil Avenue", "Olentangy River Road", "Sawmill Road", "Dublin Road",
    "Schrock Road", "Refugee Road", "Brice Road", "Hilliard Rome Road", "Cemetery Road", "Chestnut Street",
    "Birch Court", "Willow Way", "Hickory Lane", "Sycamore Drive", "Meadow View Drive", "Stonebridge Way",
    "Country Club Road", "Granville Street", "Lakeview Drive",
];

/// (city, ZIP codes) around the clinic in central Ohio.
pub(crate) const CITIES: &[(&str, &[&str])] = &[
    (
        "Columbus",
        &[
            "43201", "43202", "43204", "43206", "43209", "43211", "43212", "43214", "43219", "43223", "43224", "43227",
            "43229", "43232", "43235",
        ],
    ),
    ("Dublin", &["43016", "43017"]),
    ("Westerville", &["43081", "43082"]),
    ("Hilliard", &["43026"]),
    ("Grove City", &["43123"]),
    ("Gahanna", &["43230"]),
    ("Reynoldsburg", &["43068"]),
    ("Worthington", &["43085"]),
    ("Upper Arlington", &["43220", "43221"]),
    ("Delaware", &["43015"]),
    ("Pickerington", &["43147"]),
    ("Powell", &["43065"]),
    ("Bexley", &["43209"]),
    ("Groveport", &["43125"]),
    ("Canal Winchester", &["43110"]),
    ("Marysville", &["43040"]),
];

pub(crate) const AREA_CODES: &[&str] = &["614", "380", "740"];

// ---------------------------------------------------------------------------------------------
// The clinic

pub(crate) const CLINIC_NAME: &str = "Kiln Demo Family Health Center";
pub(crate) const CLINIC_NPI: &str = "1234567893";
pub(crate) const CLINIC_PHONE: &str = "(614) 555-0100";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Family,
    Internal,
    Pediatric,
    Cardiology,
    Endocrinology,
    Dermatology,
    Emergency,
    Hospitalist,
    UrgentCare,
    Nurse,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Credential {
    Md,
    Do,
    Np,
    Pa,
    Rn,
}

impl Credential {
    pub(crate) fn code(self) -> (&'static str, &'static str) {
        match self {
            Credential::Md => ("MD", "Doctor of Medicine"),
            Credential::Do => ("DO", "Doctor of Osteopathy"),
            Credential::Np => ("NP", "Nurse Practitioner"),
            Credential::Pa => ("PA", "Physician Assistant"),
            Credential::Rn => ("RN", "Registered Nurse"),
        }
    }

    /// May author MedicationRequests (holds a prescribing license).
    pub(crate) fn prescribes(self) -> bool {
        !matches!(self, Credential::Rn)
    }
}

pub(crate) struct Prac {
    pub given: &'static str,
    pub family: &'static str,
    pub gender: &'static str,
    pub credential: Credential,
    pub role: Role,
    /// Holds a DEA registration (may prescribe controlled substances).
    pub dea: bool,
    /// NUCC taxonomy code and display.
    pub specialty: (&'static str, &'static str),
    /// Location id where the practitioner works.
    pub location: &'static str,
}

/// The clinic's practitioners; `prac-001` is `PRACTITIONERS[0]`.
#[rustfmt::skip]
pub(crate) const PRACTITIONERS: &[Prac] = &[
    Prac { given: "Eleanor", family: "Whitfield", gender: "female", credential: Credential::Md, role: Role::Family, dea: true, specialty: ("207Q00000X", "Family Medicine Physician"), location: "loc-room-101" },
    Prac { given: "Marcus", family: "Okafor", gender: "male", credential: Credential::Md, role: Role::Family, dea: true, specialty: ("207Q00000X", "Family Medicine Physician"), location: "loc-room-102" },
    Prac { given: "Priya", family: "Raman", gender: "female", credential: Credential::Do, role: Role::Family, dea: true, specialty: ("207Q00000X", "Family Medicine Physician"), location: "loc-room-103" },
    Prac { given: "Thomas", family: "Brennan", gender: "male", credential: Credential::Md, role: Role::Family, dea: true, specialty: ("207Q00000X", "Family Medicine Physician"), location: "loc-room-104" },
    Prac { given: "Helen", family: "Castillo", gender: "female", credential: Credential::Md, role: Role::Internal, dea: true, specialty: ("207R00000X", "Internal Medicine Physician"), location: "loc-room-105" },
    Prac { given: "David", family: "Kowalczyk", gender: "male", credential: Credential::Md, role: Role::Internal, dea: true, specialty: ("207R00000X", "Internal Medicine Physician"), location: "loc-room-106" },
    Prac { given: "Naomi", family: "Feldman", gender: "female", credential: Credential::Do, role: Role::Internal, dea: true, specialty: ("207R00000X", "Internal Medicine Physician"), location: "loc-room-107" },
    Prac { given: "Samuel", family: "Adeyemi", gender: "male", credential: Credential::Md, role: Role::Pediatric, dea: true, specialty: ("208000000X", "Pediatrics Physician"), location: "loc-room-108" },
    Prac { given: "Grace", family: "Lindqvist", gender: "female", credential: Credential::Np, role: Role::Family, dea: true, specialty: ("363LF0000X", "Family Nurse Practitioner"), location: "loc-room-109" },
    Prac { given: "Jordan", family: "Ellis", gender: "male", credential: Credential::Np, role: Role::Family, dea: false, specialty: ("363LF0000X", "Family Nurse Practitioner"), location: "loc-room-110" },
    Prac { given: "Rachel", family: "Moreno", gender: "female", credential: Credential::Pa, role: Role::UrgentCare, dea: false, specialty: ("363A00000X", "Physician Assistant"), location: "loc-room-111" },
    Prac { given: "Victor", family: "Hale", gender: "male", credential: Credential::Md, role: Role::Cardiology, dea: true, specialty: ("207RC0000X", "Cardiovascular Disease Physician"), location: "loc-room-112" },
    Prac { given: "Mei", family: "Tanaka", gender: "female", credential: Credential::Md, role: Role::Endocrinology, dea: true, specialty: ("207RE0101X", "Endocrinology, Diabetes & Metabolism Physician"), location: "loc-room-112" },
    Prac { given: "Laura", family: "Benson", gender: "female", credential: Credential::Md, role: Role::Dermatology, dea: true, specialty: ("207N00000X", "Dermatology Physician"), location: "loc-room-111" },
    Prac { given: "Andre", family: "Dubois", gender: "male", credential: Credential::Md, role: Role::Emergency, dea: true, specialty: ("207P00000X", "Emergency Medicine Physician"), location: "loc-ed" },
    Prac { given: "Fatima", family: "Haddad", gender: "female", credential: Credential::Md, role: Role::Emergency, dea: true, specialty: ("207P00000X", "Emergency Medicine Physician"), location: "loc-ed" },
    Prac { given: "Robert", family: "Nguyen", gender: "male", credential: Credential::Md, role: Role::Hospitalist, dea: true, specialty: ("208M00000X", "Hospitalist"), location: "loc-ward" },
    Prac { given: "Susan", family: "Park", gender: "female", credential: Credential::Rn, role: Role::Nurse, dea: false, specialty: ("163W00000X", "Registered Nurse"), location: "loc-main" },
    Prac { given: "Michael", family: "O'Brien", gender: "male", credential: Credential::Rn, role: Role::Nurse, dea: false, specialty: ("163W00000X", "Registered Nurse"), location: "loc-main" },
    Prac { given: "Angela", family: "Russo", gender: "female", credential: Credential::Rn, role: Role::Nurse, dea: false, specialty: ("163W00000X", "Registered Nurse"), location: "loc-ed" },
];

/// The primary-care practitioners patients are assigned to, in booking-grid order: every block of
/// `PCPS.len()` consecutive patients gets each of them exactly once.
pub(crate) const PCPS: &[usize] = &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
/// Clinic nurses who record vital signs (indices into `PRACTITIONERS`).
pub(crate) const CLINIC_NURSES: &[usize] = &[17, 18];
pub(crate) const ED_NURSE: usize = 19;
pub(crate) const EMERGENCY: &[usize] = &[14, 15];
pub(crate) const HOSPITALIST: usize = 16;
pub(crate) const URGENT_CARE: usize = 10;
pub(crate) const CARDIOLOGY: usize = 11;
pub(crate) const ENDOCRINOLOGY: usize = 12;
pub(crate) const DERMATOLOGY: usize = 13;

/// Exam rooms of the clinic building: (id, name).
pub(crate) const ROOMS: &[(&str, &str)] = &[
    ("loc-room-101", "Exam Room 101"),
    ("loc-room-102", "Exam Room 102"),
    ("loc-room-103", "Exam Room 103"),
    ("loc-room-104", "Exam Room 104"),
    ("loc-room-105", "Exam Room 105"),
    ("loc-room-106", "Exam Room 106"),
    ("loc-room-107", "Exam Room 107"),
    ("loc-room-108", "Exam Room 108 (Pediatrics)"),
    ("loc-room-109", "Exam Room 109"),
    ("loc-room-110", "Exam Room 110"),
    ("loc-room-111", "Procedure Room 111"),
    ("loc-room-112", "Specialty Clinic Room 112"),
];

pub(crate) struct Payor {
    pub id: &'static str,
    pub name: &'static str,
    /// Coverage.type code (v3-ActCode) and display.
    pub plan_type: (&'static str, &'static str),
    pub plan_name: &'static str,
    pub phone: &'static str,
}

#[rustfmt::skip]
pub(crate) const PAYORS: &[Payor] = &[
    Payor { id: "org-payor-01", name: "Buckeye Mutual Health Plan", plan_type: ("PPO", "preferred provider organization policy"), plan_name: "Buckeye Mutual PPO Gold", phone: "(800) 555-0131" },
    Payor { id: "org-payor-02", name: "Heartland Care HMO", plan_type: ("HMO", "health maintenance organization policy"), plan_name: "Heartland Care HMO Select", phone: "(800) 555-0142" },
    Payor { id: "org-payor-03", name: "Senior Health Benefit Program", plan_type: ("PUBLICPOL", "public healthcare"), plan_name: "Senior Health Part B", phone: "(800) 555-0153" },
    Payor { id: "org-payor-04", name: "Ohio Family Health Program", plan_type: ("PUBLICPOL", "public healthcare"), plan_name: "Family Health Basic", phone: "(800) 555-0164" },
];
pub(crate) const PAYOR_PPO: usize = 0;
pub(crate) const PAYOR_HMO: usize = 1;
pub(crate) const PAYOR_SENIOR: usize = 2;
pub(crate) const PAYOR_FAMILY: usize = 3;

// ---------------------------------------------------------------------------------------------
// Problems (ICD-10-CM)

#[derive(Clone, Copy, Debug)]
pub(crate) struct Dx {
    pub code: &'static str,
    pub display: &'static str,
}

const fn dx(code: &'static str, display: &'static str) -> Dx {
    Dx { code, display }
}

pub(crate) const DX_ADULT_EXAM: Dx =
    dx("Z00.00", "Encounter for general adult medical examination without abnormal findings");
pub(crate) const DX_CHILD_EXAM: Dx =
    dx("Z00.129", "Encounter for routine child health examination without abnormal findings");

/// Long-term problems; each patient draws a set from age/sex-dependent prevalences.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Chronic {
    Hypertension,
    Hyperlipidemia,
    Diabetes,
    Asthma,
    Depression,
    Anxiety,
    Hypothyroidism,
    Gerd,
    KneeOsteoarthritis,
    AllergicRhinitis,
    Migraine,
    Ckd3,
    AtrialFibrillation,
    Copd,
    SleepApnea,
    VitaminD,
    Nicotine,
    AtopicDermatitis,
    Anemia,
    Obesity,
}

pub(crate) const CHRONIC_ALL: &[Chronic] = &[
    Chronic::Hypertension,
    Chronic::Hyperlipidemia,
    Chronic::Diabetes,
    Chronic::Asthma,
    Chronic::Depression,
    Chronic::Anxiety,
    Chronic::Hypothyroidism,
    Chronic::Gerd,
    Chronic::KneeOsteoarthritis,
    Chronic::AllergicRhinitis,
    Chronic::Migraine,
    Chronic::Ckd3,
    Chronic::AtrialFibrillation,
    Chronic::Copd,
    Chronic::SleepApnea,
    Chronic::VitaminD,
    Chronic::Nicotine,
    Chronic::AtopicDermatitis,
    Chronic::Anemia,
];

impl Chronic {
    pub(crate) fn dx(self) -> Dx {
        match self {
            Chronic::Hypertension => dx("I10", "Essential (primary) hypertension"),
            Chronic::Hyperlipidemia => dx("E78.5", "Hyperlipidemia, unspecified"),
            Chronic::Diabetes => dx("E11.9", "Type 2 diabetes mellitus without complications"),
            Chronic::Asthma => dx("J45.909", "Unspecified asthma, uncomplicated"),
            Chronic::Depression => dx("F32.9", "Major depressive disorder, single episode, unspecified"),
            Chronic::Anxiety => dx("F41.1", "Generalized anxiety disorder"),
            Chronic::Hypothyroidism => dx("E03.9", "Hypothyroidism, unspecified"),
            Chronic::Gerd => dx("K21.9", "Gastro-esophageal reflux disease without esophagitis"),
            Chronic::KneeOsteoarthritis => dx("M17.9", "Osteoarthritis of knee, unspecified"),
            Chronic::AllergicRhinitis => dx("J30.9", "Allergic rhinitis, unspecified"),
            Chronic::Migraine => dx("G43.909", "Migraine, unspecified, not intractable, without status migrainosus"),
            Chronic::Ckd3 => dx("N18.30", "Chronic kidney disease, stage 3 unspecified"),
            Chronic::AtrialFibrillation => dx("I48.91", "Unspecified atrial fibrillation"),
            Chronic::Copd => dx("J44.9", "Chronic obstructive pulmonary disease, unspecified"),
            Chronic::SleepApnea => dx("G47.33", "Obstructive sleep apnea (adult) (pediatric)"),
            Chronic::VitaminD => dx("E55.9", "Vitamin D deficiency, unspecified"),
            Chronic::Nicotine => dx("F17.210", "Nicotine dependence, cigarettes, uncomplicated"),
            Chronic::AtopicDermatitis => dx("L20.9", "Atopic dermatitis, unspecified"),
            Chronic::Anemia => dx("D64.9", "Anemia, unspecified"),
            Chronic::Obesity => dx("E66.9", "Obesity, unspecified"),
        }
    }

    /// Probability (per mille) of having the problem at `age`.
    pub(crate) fn prevalence(self, age: i32, female: bool) -> u32 {
        let band = |child: u32, young: u32, middle: u32, old: u32| match age {
            ..=17 => child,
            18..=39 => young,
            40..=64 => middle,
            _ => old,
        };
        match self {
            Chronic::Hypertension => band(5, 80, 300, 550),
            Chronic::Hyperlipidemia => band(0, 50, 250, 450),
            Chronic::Diabetes => band(2, 30, 120, 220),
            Chronic::Asthma if age >= 2 => band(90, 80, 70, 60),
            Chronic::Depression if age >= 12 => band(50, 90, 80, 60),
            Chronic::Anxiety if age >= 12 => band(50, 90, 70, 40),
            Chronic::Hypothyroidism if female => band(5, 50, 90, 120),
            Chronic::Hypothyroidism => band(2, 10, 20, 40),
            Chronic::Gerd => band(5, 70, 120, 150),
            Chronic::KneeOsteoarthritis => band(0, 5, 100, 250),
            Chronic::AllergicRhinitis if age >= 2 => band(120, 120, 100, 60),
            Chronic::Migraine if female && age >= 10 => band(40, 150, 100, 30),
            Chronic::Migraine if age >= 10 => band(20, 50, 40, 10),
            Chronic::Ckd3 => band(0, 2, 30, 120),
            Chronic::AtrialFibrillation => band(0, 1, 15, 80),
            Chronic::Copd => band(0, 2, 40, 90),
            Chronic::SleepApnea => band(5, 30, 80, 90),
            Chronic::VitaminD => band(30, 60, 60, 80),
            Chronic::Nicotine if age >= 16 => band(20, 140, 130, 80),
            Chronic::AtopicDermatitis => band(90, 30, 15, 10),
            Chronic::Anemia if female => band(30, 70, 50, 80),
            Chronic::Anemia => band(20, 10, 20, 60),
            _ => 0,
        }
    }

    /// Problems that usually resolve or remit (may be recorded as resolved).
    pub(crate) fn may_resolve(self) -> bool {
        matches!(
            self,
            Chronic::Depression | Chronic::Anxiety | Chronic::VitaminD | Chronic::Anemia | Chronic::AtopicDermatitis
        )
    }

    /// Problems followed up every few months (drive follow-up visits and repeat prescriptions).
    pub(crate) fn follow_up_months(self) -> Option<u32> {
        match self {
            Chronic::Diabetes => Some(4),
            Chronic::Hypertension
            | Chronic::Ckd3
            | Chronic::AtrialFibrillation
            | Chronic::Copd
            | Chronic::Depression
            | Chronic::Anxiety => Some(6),
            Chronic::Hyperlipidemia | Chronic::Hypothyroidism | Chronic::Asthma => Some(12),
            _ => None,
        }
    }
}

/// Short-lived problems seen at sick visits, the emergency department or on admission.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acute {
    Uri,
    Pharyngitis,
    OtitisMedia,
    Uti,
    Sinusitis,
    Bronchitis,
    LowBackPain,
    Headache,
    AnkleSprain,
    ViralInfection,
    Constipation,
    Covid,
    Cough,
    AbdominalPain,
    ChestPain,
    Pneumonia,
    Cellulitis,
    HeartFailure,
    CopdExacerbation,
    Dehydration,
}

impl Acute {
    pub(crate) fn dx(self) -> Dx {
        match self {
            Acute::Uri => dx("J06.9", "Acute upper respiratory infection, unspecified"),
            Acute::Pharyngitis => dx("J02.9", "Acute pharyngitis, unspecified"),
            Acute::OtitisMedia => dx("H66.90", "Otitis media, unspecified, unspecified ear"),
            Acute::Uti => dx("N39.0", "Urinary tract infection, site not specified"),
            Acute::Sinusitis => dx("J01.90", "Acute sinusitis, unspecified"),
            Acute::Bronchitis => dx("J20.9", "Acute bronchitis, unspecified"),
            Acute::LowBackPain => dx("M54.50", "Low back pain, unspecified"),
            Acute::Headache => dx("R51.9", "Headache, unspecified"),
            Acute::AnkleSprain => dx("S93.401A", "Sprain of unspecified ligament of right ankle, initial encounter"),
            Acute::ViralInfection => dx("B34.9", "Viral infection, unspecified"),
            Acute::Constipation => dx("K59.00", "Constipation, unspecified"),
            Acute::Covid => dx("U07.1", "COVID-19"),
            Acute::Cough => dx("R05.9", "Cough, unspecified"),
            Acute::AbdominalPain => dx("R10.9", "Unspecified abdominal pain"),
            Acute::ChestPain => dx("R07.9", "Chest pain, unspecified"),
            Acute::Pneumonia => dx("J18.9", "Pneumonia, unspecified organism"),
            Acute::Cellulitis => dx("L03.90", "Cellulitis, unspecified"),
            Acute::HeartFailure => dx("I50.9", "Heart failure, unspecified"),
            Acute::CopdExacerbation => dx("J44.1", "Chronic obstructive pulmonary disease with (acute) exacerbation"),
            Acute::Dehydration => dx("E86.0", "Dehydration"),
        }
    }

    /// Presents with fever.
    pub(crate) fn febrile(self) -> bool {
        matches!(
            self,
            Acute::Pharyngitis
                | Acute::OtitisMedia
                | Acute::Sinusitis
                | Acute::ViralInfection
                | Acute::Covid
                | Acute::Pneumonia
                | Acute::Cellulitis
                | Acute::Uti
        )
    }

    /// Typical pain score range at presentation.
    pub(crate) fn pain(self) -> (i64, i64) {
        match self {
            Acute::LowBackPain | Acute::AnkleSprain | Acute::AbdominalPain => (4, 8),
            Acute::ChestPain | Acute::Headache | Acute::OtitisMedia | Acute::Pharyngitis => (3, 7),
            Acute::Cellulitis | Acute::Uti | Acute::Sinusitis => (2, 6),
            _ => (0, 3),
        }
    }
}

/// Sick-visit problems with weights for (children, adults).
pub(crate) const CLINIC_ACUTE: &[(Acute, u32, u32)] = &[
    (Acute::Uri, 30, 20),
    (Acute::Pharyngitis, 15, 8),
    (Acute::OtitisMedia, 20, 2),
    (Acute::Uti, 2, 10),
    (Acute::Sinusitis, 4, 10),
    (Acute::Bronchitis, 5, 8),
    (Acute::LowBackPain, 1, 12),
    (Acute::Headache, 3, 5),
    (Acute::AnkleSprain, 5, 4),
    (Acute::ViralInfection, 12, 5),
    (Acute::Constipation, 4, 3),
    (Acute::Covid, 4, 6),
    (Acute::Cough, 6, 5),
];

pub(crate) const EMERGENCY_ACUTE: &[(Acute, u32, u32)] = &[
    (Acute::AbdominalPain, 10, 20),
    (Acute::ChestPain, 1, 20),
    (Acute::AnkleSprain, 20, 10),
    (Acute::Pneumonia, 8, 8),
    (Acute::Dehydration, 15, 5),
    (Acute::Cellulitis, 5, 6),
    (Acute::Uti, 2, 8),
    (Acute::Headache, 5, 6),
];

pub(crate) const INPATIENT_ACUTE: &[(Acute, u32, u32)] = &[
    (Acute::Pneumonia, 30, 30),
    (Acute::Cellulitis, 10, 15),
    (Acute::Dehydration, 30, 10),
    (Acute::HeartFailure, 0, 20),
    (Acute::CopdExacerbation, 0, 15),
];

// ---------------------------------------------------------------------------------------------
// Medications (RxNorm clinical drugs)

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Form {
    Tablet,
    Capsule,
    Inhaler,
}

impl Form {
    /// (unit text, UCUM annotation code) for one dose unit.
    pub(crate) fn unit(self) -> (&'static str, &'static str) {
        match self {
            Form::Tablet => ("tablet", "{tbl}"),
            Form::Capsule => ("capsule", "{capsule}"),
            Form::Inhaler => ("puff", "{puff}"),
        }
    }
}

pub(crate) struct Med {
    pub rxnorm: &'static str,
    pub display: &'static str,
    pub text: &'static str,
    pub form: Form,
    /// Dose units per administration.
    pub dose: u32,
    /// Administrations per day (the most allowed per day for as-needed medicines).
    pub per_day: u32,
    pub as_needed: bool,
    /// DEA schedule of a controlled substance ("CII", "CIV").
    pub controlled: Option<&'static str>,
    pub sig: &'static str,
}

#[allow(clippy::too_many_arguments)]
const fn med(
    rxnorm: &'static str,
    display: &'static str,
    text: &'static str,
    form: Form,
    dose: u32,
    per_day: u32,
    as_needed: bool,
    sig: &'static str,
) -> Med {
    Med { rxnorm, display, text, form, dose, per_day, as_needed, controlled: None, sig }
}

pub(crate) const LISINOPRIL: Med = med(
    "314076",
    "lisinopril 10 MG Oral Tablet",
    "Lisinopril 10 mg tablet",
    Form::Tablet,
    1,
    1,
    false,
    "Take 1 tablet by mouth once daily.",
);
pub(crate) const AMLODIPINE: Med = med(
    "197361",
    "amlodipine 5 MG Oral Tablet",
    "Amlodipine 5 mg tablet",
    Form::Tablet,
    1,
    1,
    false,
    "Take 1 tablet by mouth once daily.",
);
pub(crate) const HCTZ: Med = med(
    "310798",
    "Hydrochlorothiazide 25 MG Oral Tablet",
    "Hydrochlorothiazide 25 mg tablet",
    Form::Tablet,
    1,
    1,
    false,
    "Take 1 tablet by mouth every morning.",
);
pub(crate) const METFORMIN: Med = med(
    "860975",
    "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet",
    "Metformin ER 500 mg tablet",
    Form::Tablet,
    2,
    1,
    false,
    "Take 2 tablets by mouth once daily with the evening meal.",
);
pub(crate) const ROSUVASTATIN: Med = med(
    "859747",
    "rosuvastatin calcium 10 MG Oral Tablet",
    "Rosuvastatin 10 mg tablet",
    Form::Tablet,
    1,
    1,
    false,
    "Take 1 tablet by mouth once daily.",
);
pub(crate) const PRAVASTATIN: Med = med(
    "904467",
    "pravastatin sodium 20 MG Oral Tablet",
    "Pravastatin 20 mg tablet",
    Form::Tablet,
    1,
    1,
    false,
    "Take 1 tablet by mouth at bedtime.",
);
pub(crate) const LEVOTHYROXINE: Med = med(
    "966222",
    "Levothyroxine Sodium 0.075 MG Oral Tablet",
    "Levothyroxine 75 mcg tablet",
    Form::Tablet,
    1,
    1,
    false,
    "Take 1 tablet by mouth every morning on an empty stomach.",
);
pub(crate) const FLUOXETINE: Med = med(
    "310385",
    "FLUoxetine 20 MG Oral Capsule",
    "Fluoxetine 20 mg capsule",
    Form::Capsule,
    1,
    1,
    false,
    "Take 1 capsule by mouth every morning.",
);
pub(crate) const ALBUTEROL: Med = med(
    "745752",
    "NDA021457 200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler [ProAir]",
    "Albuterol HFA inhaler 90 mcg/actuation",
    Form::Inhaler,
    2,
    4,
    true,
    "Inhale 2 puffs every 4 to 6 hours as needed for wheezing or shortness of breath.",
);
pub(crate) const CETIRIZINE: Med = med(
    "1014678",
    "cetirizine hydrochloride 10 MG Oral Tablet",
    "Cetirizine 10 mg tablet",
    Form::Tablet,
    1,
    1,
    false,
    "Take 1 tablet by mouth once daily.",
);
pub(crate) const ASPIRIN: Med = med(
    "243670",
    "Aspirin 81 MG Oral Tablet",
    "Aspirin 81 mg tablet",
    Form::Tablet,
    1,
    1,
    false,
    "Take 1 tablet by mouth once daily.",
);
pub(crate) const AMOXICILLIN: Med = med(
    "308192",
    "Amoxicillin 500 MG Oral Tablet",
    "Amoxicillin 500 mg tablet",
    Form::Tablet,
    1,
    3,
    false,
    "Take 1 tablet by mouth three times daily for 10 days.",
);
pub(crate) const AMOXICILLIN_PEDS: Med = med(
    "308182",
    "Amoxicillin 250 MG Oral Capsule",
    "Amoxicillin 250 mg capsule",
    Form::Capsule,
    1,
    2,
    false,
    "Take 1 capsule by mouth twice daily for 10 days.",
);
pub(crate) const CEFUROXIME: Med = med(
    "309097",
    "Cefuroxime 250 MG Oral Tablet",
    "Cefuroxime 250 mg tablet",
    Form::Tablet,
    1,
    2,
    false,
    "Take 1 tablet by mouth twice daily for 10 days.",
);
pub(crate) const DOXYCYCLINE: Med = med(
    "1650142",
    "Doxycycline Monohydrate 100 MG Oral Tablet",
    "Doxycycline 100 mg tablet",
    Form::Tablet,
    1,
    2,
    false,
    "Take 1 tablet by mouth twice daily for 7 days with a full glass of water.",
);
pub(crate) const ACETAMINOPHEN: Med = med(
    "313782",
    "Acetaminophen 325 MG Oral Tablet",
    "Acetaminophen 325 mg tablet",
    Form::Tablet,
    2,
    4,
    true,
    "Take 2 tablets by mouth every 6 hours as needed for pain or fever.",
);
pub(crate) const IBUPROFEN: Med = med(
    "310965",
    "Ibuprofen 200 MG Oral Tablet",
    "Ibuprofen 200 mg tablet",
    Form::Tablet,
    2,
    3,
    true,
    "Take 2 tablets by mouth every 8 hours as needed for pain, with food.",
);
pub(crate) const NAPROXEN: Med = med(
    "849574",
    "Naproxen sodium 220 MG Oral Tablet",
    "Naproxen sodium 220 mg tablet",
    Form::Tablet,
    1,
    2,
    true,
    "Take 1 tablet by mouth every 12 hours as needed for pain, with food.",
);
pub(crate) const TRAMADOL: Med = Med {
    controlled: Some("CIV"),
    ..med(
        "835603",
        "tramadol hydrochloride 50 MG Oral Tablet",
        "Tramadol 50 mg tablet",
        Form::Tablet,
        1,
        4,
        true,
        "Take 1 tablet by mouth every 6 hours as needed for severe pain.",
    )
};
pub(crate) const HYDROCODONE_APAP: Med = Med {
    controlled: Some("CII"),
    ..med(
        "857005",
        "Acetaminophen 325 MG / HYDROcodone Bitartrate 7.5 MG Oral Tablet",
        "Hydrocodone-acetaminophen 7.5-325 mg tablet",
        Form::Tablet,
        1,
        4,
        true,
        "Take 1 tablet by mouth every 6 hours as needed for severe pain. Do not exceed 4 tablets per day.",
    )
};
pub(crate) const OXYCODONE_APAP: Med = Med {
    controlled: Some("CII"),
    ..med(
        "1049221",
        "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet",
        "Oxycodone-acetaminophen 5-325 mg tablet",
        Form::Tablet,
        1,
        4,
        true,
        "Take 1 tablet by mouth every 6 hours as needed for severe pain.",
    )
};

/// RxNorm codes of the controlled substances this generator prescribes (DEA schedule II–V): the
/// server's "DEA required to author controlled-substance MedicationRequests" rule must accept
/// these only from practitioners with a DEA identifier.
pub const CONTROLLED_RXNORM: &[(&str, &str)] = &[("835603", "CIV"), ("857005", "CII"), ("1049221", "CII")];

// ---------------------------------------------------------------------------------------------
// Laboratory (LOINC)

pub(crate) struct Lab {
    pub loinc: &'static str,
    pub display: &'static str,
    pub unit: &'static str,
    pub ucum: &'static str,
    pub decimals: u32,
}

const fn lab(loinc: &'static str, display: &'static str, unit: &'static str, ucum: &'static str, decimals: u32) -> Lab {
    Lab { loinc, display, unit, ucum, decimals }
}

pub(crate) const GLUCOSE: Lab = lab("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0);
pub(crate) const CREATININE: Lab = lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 2);
pub(crate) const SODIUM: Lab = lab("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 0);
pub(crate) const POTASSIUM: Lab = lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", "mmol/L", 1);
pub(crate) const CHOLESTEROL: Lab = lab("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0);
pub(crate) const HDL: Lab = lab("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0);
pub(crate) const LDL: Lab =
    lab("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", "mg/dL", 0);
pub(crate) const TRIGLYCERIDES: Lab =
    lab("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", "mg/dL", 0);
pub(crate) const HEMOGLOBIN: Lab = lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "g/dL", 1);
pub(crate) const WBC: Lab = lab("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "10*3/uL", 1);
pub(crate) const PLATELETS: Lab =
    lab("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", "10*3/uL", 0);
pub(crate) const HBA1C: Lab = lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "%", 1);
pub(crate) const TSH: Lab = lab("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "mIU/L", "m[IU]/L", 2);

/// Panels: (LOINC, display) of the DiagnosticReport that groups the results.
pub(crate) const PANEL_BMP: (&str, &str) = ("51990-0", "Basic metabolic panel - Blood");
pub(crate) const PANEL_LIPID: (&str, &str) = ("57698-3", "Lipid panel with direct LDL - Serum or Plasma");
pub(crate) const PANEL_CBC: (&str, &str) = ("58410-2", "CBC panel - Blood by Automated count");

/// ABO/Rh results (LOINC 882-1 answers, SNOMED CT).
pub(crate) const BLOOD_GROUPS: &[(&str, &str, u32)] = &[
    ("278147001", "Blood group O Rh(D) positive", 374),
    ("278148006", "Blood group O Rh(D) negative", 66),
    ("278149003", "Blood group A Rh(D) positive", 357),
    ("278152006", "Blood group A Rh(D) negative", 63),
    ("278150003", "Blood group B Rh(D) positive", 85),
    ("278153001", "Blood group B Rh(D) negative", 15),
    ("278151004", "Blood group AB Rh(D) positive", 34),
    ("278154007", "Blood group AB Rh(D) negative", 6),
];

// ---------------------------------------------------------------------------------------------
// Allergies

pub(crate) struct Allergen {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
    pub category: &'static str,
    /// Manifestations (SNOMED CT code, display) typical for this allergen.
    pub reactions: &'static [(&'static str, &'static str)],
}

const HIVES: (&str, &str) = ("247472004", "Hives");
const RASH: (&str, &str) = ("271807003", "Eruption of skin");
const ANAPHYLAXIS: (&str, &str) = ("39579001", "Anaphylactic reaction");
const NAUSEA: (&str, &str) = ("422587007", "Nausea");
const DYSPNEA: (&str, &str) = ("267036007", "Dyspnea");
const ITCHING: (&str, &str) = ("418290006", "Itching");
const SNEEZING: (&str, &str) = ("76067001", "Sneezing");
const CONJUNCTIVITIS: (&str, &str) = ("9826008", "Conjunctivitis");
const SWELLING: (&str, &str) = ("267038008", "Edema");
const DIARRHEA: (&str, &str) = ("62315008", "Diarrhea");

#[rustfmt::skip]
pub(crate) const ALLERGENS: &[Allergen] = &[
    Allergen { system: SYS_RXNORM, code: "7980", display: "Penicillin G", category: "medication", reactions: &[HIVES, RASH, ANAPHYLAXIS] },
    Allergen { system: SYS_RXNORM, code: "723", display: "Amoxicillin", category: "medication", reactions: &[RASH, HIVES, DIARRHEA] },
    Allergen { system: SYS_RXNORM, code: "10180", display: "Sulfamethoxazole", category: "medication", reactions: &[RASH, ITCHING] },
    Allergen { system: SYS_RXNORM, code: "1191", display: "Aspirin", category: "medication", reactions: &[HIVES, DYSPNEA] },
    Allergen { system: SYS_RXNORM, code: "5640", display: "Ibuprofen", category: "medication", reactions: &[HIVES, SWELLING] },
    Allergen { system: SYS_RXNORM, code: "2670", display: "Codeine", category: "medication", reactions: &[NAUSEA, ITCHING] },
    Allergen { system: SYS_SNOMED, code: "256349002", display: "Peanut - dietary (substance)", category: "food", reactions: &[HIVES, SWELLING, ANAPHYLAXIS] },
    Allergen { system: SYS_SNOMED, code: "227493005", display: "Cashew nuts", category: "food", reactions: &[HIVES, ANAPHYLAXIS] },
    Allergen { system: SYS_SNOMED, code: "227037002", display: "Fish - dietary (substance)", category: "food", reactions: &[HIVES, NAUSEA] },
    Allergen { system: SYS_SNOMED, code: "102263004", display: "Eggs (edible) (substance)", category: "food", reactions: &[RASH, NAUSEA] },
    Allergen { system: SYS_SNOMED, code: "3718001", display: "Cow's milk (substance)", category: "food", reactions: &[DIARRHEA, RASH] },
    Allergen { system: SYS_SNOMED, code: "256259004", display: "Pollen (substance)", category: "environment", reactions: &[SNEEZING, CONJUNCTIVITIS] },
    Allergen { system: SYS_SNOMED, code: "264287008", display: "Animal dander (substance)", category: "environment", reactions: &[SNEEZING, ITCHING, DYSPNEA] },
    Allergen { system: SYS_SNOMED, code: "260147004", display: "House dust mite (organism)", category: "environment", reactions: &[SNEEZING, CONJUNCTIVITIS] },
    Allergen { system: SYS_SNOMED, code: "111088007", display: "Latex (substance)", category: "environment", reactions: &[RASH, ITCHING] },
    Allergen { system: SYS_SNOMED, code: "288328004", display: "Bee venom (substance)", category: "environment", reactions: &[SWELLING, ANAPHYLAXIS] },
];

/// Indices in `ALLERGENS` of penicillins (patients allergic to them get other antibiotics).
pub(crate) const PENICILLIN_ALLERGENS: &[usize] = &[0, 1];
/// Index in `ALLERGENS` of codeine (no opioid prescriptions for these patients).
pub(crate) const OPIOID_ALLERGEN: usize = 5;
/// Indices in `ALLERGENS` of NSAIDs (aspirin, ibuprofen).
pub(crate) const NSAID_ALLERGENS: &[usize] = &[3, 4];
