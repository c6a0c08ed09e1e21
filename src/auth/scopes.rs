//! SMART on FHIR scope parsing and algebra, per SMART App Launch 2.2 "Scopes and Launch Context"
//! (<https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html>).
//!
//! Scopes are parsed from either the v1 (`patient/Observation.read`) or the v2 (`patient/Observation.rs`,
//! optionally with a granular `?param=value` filter) syntax and always written back in v2 form, so a server
//! stores and compares one canonical shape no matter which dialect the client spoke.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::str::FromStr;

/// A granular (v2) filter: FHIR search `(param, value)` pairs, percent-decoded, that must all match.
pub type Filter = Vec<(String, String)>;

/// Whose data a resource scope reaches: the `patient/`, `user/` or `system/` prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Context {
    Patient,
    User,
    System,
}

impl Context {
    pub fn prefix(self) -> &'static str {
        match self {
            Context::Patient => "patient",
            Context::User => "user",
            Context::System => "system",
        }
    }

    fn from_prefix(prefix: &str) -> Option<Self> {
        match prefix {
            "patient" => Some(Context::Patient),
            "user" => Some(Context::User),
            "system" => Some(Context::System),
            _ => None,
        }
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// One FHIR REST interaction a v2 permission letter grants.
// The declaration order is the `cruds` order the spec mandates; `Permissions` relies on it for its bit layout.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Interaction {
    Create,
    Read,
    Update,
    Delete,
    Search,
}

impl Interaction {
    /// Every interaction, in the order v2 permission letters must appear.
    pub const ALL: [Interaction; 5] =
        [Interaction::Create, Interaction::Read, Interaction::Update, Interaction::Delete, Interaction::Search];

    pub fn letter(self) -> char {
        match self {
            Interaction::Create => 'c',
            Interaction::Read => 'r',
            Interaction::Update => 'u',
            Interaction::Delete => 'd',
            Interaction::Search => 's',
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Interaction`]s; displays as v2 letters in `cruds` order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Permissions {
    bits: u8,
}

impl Permissions {
    pub const NONE: Permissions = Permissions { bits: 0 };
    pub const ALL: Permissions = Permissions { bits: 0b1_1111 };
    // v1 `read` covered both reading and searching, and `write` everything that changes data;
    // this is the mapping the spec gives for upgrading v1 scopes.
    const V1_READ: Permissions =
        Permissions { bits: (1 << Interaction::Read as u8) | (1 << Interaction::Search as u8) };
    const V1_WRITE: Permissions = Permissions {
        bits: (1 << Interaction::Create as u8) | (1 << Interaction::Update as u8) | (1 << Interaction::Delete as u8),
    };

    pub fn contains(self, interaction: Interaction) -> bool {
        self.bits & interaction.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.bits == 0
    }

    pub fn is_subset_of(self, other: Permissions) -> bool {
        self.bits & !other.bits == 0
    }

    pub fn intersection(self, other: Permissions) -> Permissions {
        Permissions { bits: self.bits & other.bits }
    }

    /// The interactions in `cruds` order.
    pub fn iter(self) -> impl Iterator<Item = Interaction> {
        Interaction::ALL.into_iter().filter(move |&interaction| self.contains(interaction))
    }

    fn from_v2_letters(letters: &str) -> Result<Permissions, String> {
        if letters.is_empty() {
            return Err("permissions are missing after `.`".to_owned());
        }
        let mut permissions = Permissions::NONE;
        // Requiring strictly increasing positions rejects both repeats (`rr`) and reordering (`sr`), which
        // keeps one spelling per permission set and so makes string comparison of scopes meaningful.
        let mut next_allowed = 0;
        for letter in letters.chars() {
            let Some(position) = Interaction::ALL.iter().position(|i| i.letter() == letter) else {
                return Err(format!("`{letter}` is not a permission; use letters from `cruds`"));
            };
            if position < next_allowed {
                return Err(format!("permissions `{letters}` must use each of `cruds` at most once, in that order"));
            }
            next_allowed = position + 1;
            permissions.bits |= Interaction::ALL[position].bit();
        }
        Ok(permissions)
    }
}

impl FromIterator<Interaction> for Permissions {
    fn from_iter<I: IntoIterator<Item = Interaction>>(iter: I) -> Self {
        Permissions { bits: iter.into_iter().fold(0, |bits, interaction| bits | interaction.bit()) }
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.iter().try_for_each(|interaction| f.write_char(interaction.letter()))
    }
}

/// Access to FHIR resources, e.g. `patient/Observation.rs?category=...`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct ResourceScope {
    pub context: Context,
    /// `None` is the `*` wildcard.
    pub resource_type: Option<String>,
    pub permissions: Permissions,
    /// Empty means unfiltered.
    pub filter: Filter,
}

impl ResourceScope {
    /// Whether everything `narrower` grants is also granted by `self`.
    pub fn covers(&self, narrower: &ResourceScope) -> bool {
        self.context == narrower.context
            && self.resource_type.as_deref().is_none_or(|t| narrower.resource_type.as_deref() == Some(t))
            && narrower.permissions.is_subset_of(self.permissions)
            && filter_is_within(&narrower.filter, &self.filter)
    }

    /// What both scopes grant, or `None` when they share nothing expressible as one scope.
    pub fn intersection(&self, other: &ResourceScope) -> Option<ResourceScope> {
        if self.context != other.context {
            return None;
        }
        let resource_type = match (&self.resource_type, &other.resource_type) {
            (None, t) | (t, None) => t.clone(),
            (Some(a), Some(b)) if a == b => Some(a.clone()),
            _ => return None,
        };
        let permissions = self.permissions.intersection(other.permissions);
        if permissions.is_empty() {
            return None;
        }
        // Filters are conjunctions, so when one filter's conditions include the other's it is the narrower
        // one and is the intersection. Unrelated filters would need a merged filter nobody asked for or
        // registered, so granting nothing is the safe answer.
        let filter = if filter_is_within(&self.filter, &other.filter) {
            self.filter.clone()
        } else if filter_is_within(&other.filter, &self.filter) {
            other.filter.clone()
        } else {
            return None;
        };
        Some(ResourceScope { context: self.context, resource_type, permissions, filter })
    }

    fn parse(whole: &str, context: Context, rest: &str) -> Result<ResourceScope, ScopeError> {
        let invalid = |reason: String| ScopeError::invalid(whole, reason);
        let (body, query) = match rest.split_once('?') {
            Some((body, query)) => (body, Some(query)),
            None => (rest, None),
        };
        let Some((type_name, permission_text)) = body.split_once('.') else {
            return Err(invalid(format!("expected `{context}/<ResourceType>.<permissions>`, e.g. `{context}/*.rs`")));
        };
        let resource_type = match type_name {
            "*" => None,
            "" => return Err(invalid("the resource type is missing before `.`".to_owned())),
            name if is_resource_type_name(name) => Some(name.to_owned()),
            name => return Err(invalid(format!("`{name}` is neither `*` nor a FHIR resource type name"))),
        };
        let (permissions, is_v1) = match permission_text {
            "read" => (Permissions::V1_READ, true),
            "write" => (Permissions::V1_WRITE, true),
            "*" => (Permissions::ALL, true),
            letters => (Permissions::from_v2_letters(letters).map_err(invalid)?, false),
        };
        let filter = match query {
            None => Filter::new(),
            Some(_) if is_v1 => {
                return Err(invalid(format!(
                    "filters need v2 permissions such as `.rs`; v1 `.{permission_text}` cannot take a `?` query"
                )));
            }
            Some(query) => parse_filter(query).map_err(invalid)?,
        };
        Ok(ResourceScope { context, resource_type, permissions, filter })
    }
}

impl fmt::Display for ResourceScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let resource_type = self.resource_type.as_deref().unwrap_or("*");
        write!(f, "{}/{resource_type}.{}", self.context, self.permissions)?;
        for (index, (param, value)) in self.filter.iter().enumerate() {
            f.write_char(if index == 0 { '?' } else { '&' })?;
            write_percent_encoded(f, param)?;
            f.write_char('=')?;
            write_percent_encoded(f, value)?;
        }
        Ok(())
    }
}

/// One parsed scope.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Scope {
    Resource(ResourceScope),
    OpenId,
    FhirUser,
    Profile,
    Launch,
    LaunchPatient,
    LaunchEncounter,
    OfflineAccess,
    OnlineAccess,
    /// A scope this module does not interpret; OAuth lets a server ignore scopes it does not know.
    Other(String),
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, ScopeError> {
        if s.is_empty() {
            return Err(ScopeError("empty scope: expected something like `patient/*.rs` or `openid`".to_owned()));
        }
        if let Some(bad) = s.chars().find(|&c| !is_scope_token_char(c)) {
            return Err(ScopeError::invalid(s, format!("{bad:?} is not allowed in an OAuth scope")));
        }
        Ok(match s {
            "openid" => Scope::OpenId,
            "fhirUser" => Scope::FhirUser,
            "profile" => Scope::Profile,
            "launch" => Scope::Launch,
            "launch/patient" => Scope::LaunchPatient,
            "launch/encounter" => Scope::LaunchEncounter,
            "offline_access" => Scope::OfflineAccess,
            "online_access" => Scope::OnlineAccess,
            _ => match s.split_once('/').and_then(|(prefix, rest)| Some((Context::from_prefix(prefix)?, rest))) {
                // A malformed resource scope must not quietly become `Other`: the client clearly asked for data
                // access, and silently granting less than requested would surface as confusing failures later.
                Some((context, rest)) => Scope::Resource(ResourceScope::parse(s, context, rest)?),
                None => Scope::Other(s.to_owned()),
            },
        })
    }

    pub fn as_resource(&self) -> Option<&ResourceScope> {
        match self {
            Scope::Resource(resource) => Some(resource),
            _ => None,
        }
    }

    /// Whether everything `self` grants is also granted by `broader`.
    pub fn is_covered_by(&self, broader: &Scope) -> bool {
        match (self, broader) {
            (Scope::Resource(narrow), Scope::Resource(broad)) => broad.covers(narrow),
            _ => self == broader,
        }
    }
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scope::parse(s)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scope::Resource(resource) => return resource.fmt(f),
            Scope::OpenId => "openid",
            Scope::FhirUser => "fhirUser",
            Scope::Profile => "profile",
            Scope::Launch => "launch",
            Scope::LaunchPatient => "launch/patient",
            Scope::LaunchEncounter => "launch/encounter",
            Scope::OfflineAccess => "offline_access",
            Scope::OnlineAccess => "online_access",
            Scope::Other(other) => other,
        })
    }
}

/// Why a scope string was rejected; the message names the scope.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ScopeError(String);

impl ScopeError {
    fn invalid(scope: &str, reason: impl fmt::Display) -> ScopeError {
        ScopeError(format!("invalid scope `{scope}`: {reason}"))
    }
}

impl fmt::Display for ScopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ScopeError {}

/// The answer to "may this interaction happen?".
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Allowed {
    No,
    All,
    /// Allowed for resources matching any one of these filters.
    Where(Vec<Filter>),
}

/// A requested or granted set of scopes: duplicates removed, first-seen order kept.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct ScopeSet(Vec<Scope>);

impl ScopeSet {
    pub fn parse(space_separated: &str) -> Result<ScopeSet, ScopeError> {
        space_separated.split_whitespace().map(Scope::parse).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scope> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, scope: &Scope) -> bool {
        self.0.contains(scope)
    }

    /// Whether any resource scope uses `context`, e.g. to decide if a patient must be chosen at launch.
    pub fn has_context(&self, context: Context) -> bool {
        self.resource_scopes().any(|resource| resource.context == context)
    }

    pub fn allowed(&self, context: Context, resource_type: &str, interaction: Interaction) -> Allowed {
        let mut filters = Vec::new();
        let applicable = self.resource_scopes().filter(|resource| {
            resource.context == context
                && resource.resource_type.as_deref().is_none_or(|t| t == resource_type)
                && resource.permissions.contains(interaction)
        });
        for resource in applicable {
            // One unfiltered grant makes every filtered one irrelevant.
            if resource.filter.is_empty() {
                return Allowed::All;
            }
            if !filters.contains(&resource.filter) {
                filters.push(resource.filter.clone());
            }
        }
        if filters.is_empty() { Allowed::No } else { Allowed::Where(filters) }
    }

    /// What may be granted of `self` (the request) given `ceiling` (what the client is registered for).
    pub fn narrow_to(&self, ceiling: &ScopeSet) -> ScopeSet {
        self.iter()
            .flat_map(|requested| -> Vec<Scope> {
                match requested {
                    Scope::Resource(requested) => ceiling
                        .resource_scopes()
                        .filter_map(|limit| requested.intersection(limit))
                        .map(Scope::Resource)
                        .collect(),
                    other if ceiling.contains(other) => vec![other.clone()],
                    _ => Vec::new(),
                }
            })
            .collect()
    }

    /// Whether every scope of `self` is granted by some scope of `other`, e.g. so a refresh cannot escalate.
    pub fn is_covered_by(&self, other: &ScopeSet) -> bool {
        self.iter().all(|scope| other.iter().any(|broader| scope.is_covered_by(broader)))
    }

    /// Drops the scopes a user un-ticked on the consent page, identified by their displayed text.
    pub fn without(&self, removed: &[String]) -> ScopeSet {
        // Also matching by parsed value lets a form echo the client's original spelling (e.g. v1 `.read`).
        let is_removed = |scope: &Scope| {
            let text = scope.to_string();
            removed.iter().any(|r| *r == text || Scope::parse(r).is_ok_and(|parsed| parsed == *scope))
        };
        ScopeSet(self.iter().filter(|scope| !is_removed(scope)).cloned().collect())
    }

    fn resource_scopes(&self) -> impl Iterator<Item = &ResourceScope> {
        self.iter().filter_map(Scope::as_resource)
    }
}

impl FromIterator<Scope> for ScopeSet {
    fn from_iter<I: IntoIterator<Item = Scope>>(iter: I) -> Self {
        let mut scopes = Vec::new();
        for scope in iter {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        ScopeSet(scopes)
    }
}

impl<'a> IntoIterator for &'a ScopeSet {
    type Item = &'a Scope;
    type IntoIter = std::slice::Iter<'a, Scope>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScopeSet::parse(s)
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, scope) in self.iter().enumerate() {
            if index > 0 {
                f.write_char(' ')?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

/// Plain words for a consent screen, phrased for a patient (`patient_facing`) or a clinician.
pub fn describe(scope: &Scope, patient_facing: bool) -> String {
    let text = match (scope, patient_facing) {
        (Scope::Resource(resource), _) => return describe_resource(resource, patient_facing),
        (Scope::OpenId, _) => "Confirm who you are when you sign in",
        (Scope::FhirUser, true) => "Know who you are in this health record system",
        (Scope::FhirUser, false) => "Know who you are, such as your name and role as a care provider",
        (Scope::Profile, _) => "See your basic profile, such as your name",
        (Scope::Launch, true) => "Open with the record you are currently viewing",
        (Scope::Launch, false) => "Open in the context of the patient you are viewing",
        (Scope::LaunchPatient, true) => "Use your record when the app starts",
        (Scope::LaunchPatient, false) => "Choose a patient when the app starts",
        (Scope::LaunchEncounter, true) => "Know which of your visits you are looking at",
        (Scope::LaunchEncounter, false) => "Use the current visit when the app starts",
        (Scope::OfflineAccess, _) => "Keep access when you are not using the app (until you revoke it)",
        (Scope::OnlineAccess, _) => "Keep access while you are signed in",
        (Scope::Other(other), _) if other == crate::sensitive::REVEAL_SCOPE => {
            "See sensitive identifiers, such as Social Security numbers, in full"
        }
        (Scope::Other(other), _) => other,
    };
    text.to_owned()
}

fn describe_resource(resource: &ResourceScope, patient_facing: bool) -> String {
    // Ordered by how alarming the verb is, so the reassuring ones lead and deletion stands out at the end.
    const VERBS: [(Interaction, &str); 5] = [
        (Interaction::Read, "see"),
        (Interaction::Search, "search"),
        (Interaction::Create, "add"),
        (Interaction::Update, "change"),
        (Interaction::Delete, "delete"),
    ];
    let verbs: Vec<&str> =
        VERBS.iter().filter(|(interaction, _)| resource.permissions.contains(*interaction)).map(|&(_, v)| v).collect();

    let kind = resource.resource_type.as_deref().map(|t| friendly_type_name(t, patient_facing));
    let records = match (resource.context, patient_facing, kind) {
        (Context::Patient, true, None) => "all your health records".to_owned(),
        (Context::Patient, true, Some(kind)) => format!("your {kind}"),
        (Context::User, true, None) => "all health records you have access to".to_owned(),
        (Context::User, true, Some(kind)) => format!("{kind} you have access to"),
        (context, _, kind) => {
            let kind = kind.unwrap_or(Cow::Borrowed("all kinds of records"));
            match context {
                Context::Patient => format!("{kind} of the current patient"),
                Context::User => format!("{kind} of any patient you have access to"),
                Context::System => format!("{kind} for a backend system"),
            }
        }
    };

    let mut text = format!("{} {records}", capitalize(&join_naturally(&verbs, "and")));
    if !resource.filter.is_empty() {
        let conditions: Vec<String> =
            resource.filter.iter().map(|(param, value)| describe_condition(param, value)).collect();
        write!(text, " (only where {})", join_naturally(&conditions, "and")).expect("writing to a String cannot fail");
    }
    text
}

fn describe_condition(param: &str, value: &str) -> String {
    let param = param.trim_start_matches('_').replace('-', " ");
    // A token value is `system|code`; the code is the meaningful part to a person. Commas are FHIR's "or".
    let codes: Vec<&str> = value
        .split(',')
        .map(|v| v.rsplit_once('|').map_or(v, |(_, code)| if code.is_empty() { v } else { code }))
        .collect();
    format!("{param} is {}", join_naturally(&codes, "or"))
}

fn friendly_type_name(resource_type: &str, patient_facing: bool) -> Cow<'static, str> {
    let name = match resource_type {
        "Patient" if patient_facing => "basic information",
        "Patient" => "demographics",
        "Observation" => "observations such as vital signs and lab results",
        "Condition" => "problems and diagnoses",
        "MedicationRequest" => "prescriptions",
        "MedicationStatement" => "medications being taken",
        "AllergyIntolerance" => "allergies",
        "Encounter" => "visits",
        "Appointment" => "appointments",
        "Immunization" => "immunizations",
        "DiagnosticReport" => "test and imaging reports",
        "Procedure" => "procedures",
        "Practitioner" => "care providers",
        "Organization" => "healthcare organizations",
        "Coverage" => "insurance coverage",
        "Consent" => "consent and privacy choices",
        "DocumentReference" => "documents such as clinical notes",
        "CarePlan" => "care plans",
        "CareTeam" => "care teams",
        "Goal" => "health goals",
        "ServiceRequest" => "orders and referrals",
        "Device" => "medical devices",
        other => return Cow::Owned(format!("{} records", split_camel_case(other))),
    };
    Cow::Borrowed(name)
}

fn split_camel_case(name: &str) -> String {
    let mut words = String::with_capacity(name.len() + 4);
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && index > 0 {
            words.push(' ');
        }
        words.push(c.to_ascii_lowercase());
    }
    words
}

fn join_naturally<S: AsRef<str>>(items: &[S], conjunction: &str) -> String {
    match items {
        [] => String::new(),
        [only] => only.as_ref().to_owned(),
        [init @ .., last] => {
            let init: Vec<&str> = init.iter().map(AsRef::as_ref).collect();
            format!("{} {conjunction} {}", init.join(", "), last.as_ref())
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// RFC 6749 §3.3 `scope-token` characters.
fn is_scope_token_char(c: char) -> bool {
    matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')
}

fn is_resource_type_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_uppercase()) && chars.all(|c| c.is_ascii_alphanumeric())
}

/// Filters are conjunctions, so `narrow` matches no more than `broad` when it requires all of `broad`'s conditions.
fn filter_is_within(narrow: &Filter, broad: &Filter) -> bool {
    broad.iter().all(|condition| narrow.contains(condition))
}

fn parse_filter(query: &str) -> Result<Filter, String> {
    if query.is_empty() {
        return Err("`?` must be followed by at least one `param=value`".to_owned());
    }
    query
        .split('&')
        .map(|pair| {
            if pair.is_empty() {
                return Err("the filter has an empty `param=value` pair (a stray `&`?)".to_owned());
            }
            let Some((param, value)) = pair.split_once('=') else {
                return Err(format!("`{pair}` in the filter is not a `param=value` pair"));
            };
            // Decoding only after splitting lets values carry an encoded `&` or `=` as data.
            let (param, value) = (percent_decode(param)?, percent_decode(value)?);
            // An empty value would be ignored by a FHIR search and so silently widen the filter.
            if param.is_empty() || value.is_empty() {
                return Err(format!("`{pair}` in the filter needs both a parameter name and a value"));
            }
            Ok((param, value))
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String, String> {
    fn hex_digit(byte: &u8) -> Option<u8> {
        char::from(*byte).to_digit(16).and_then(|digit| u8::try_from(digit).ok())
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let (Some(high), Some(low)) =
                (bytes.get(index + 1).and_then(hex_digit), bytes.get(index + 2).and_then(hex_digit))
            else {
                return Err(format!("`{text}` has a `%` not followed by two hex digits"));
            };
            decoded.push((high << 4) | low);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| format!("`{text}` does not decode to UTF-8 text"))
}

fn write_percent_encoded(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    // The raw set keeps `system|code` URLs readable as in the spec's examples; everything else, notably the
    // filter's own `&`, `=`, `%` and anything an OAuth scope token cannot hold, is escaped so parsing round-trips.
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~|:/,+".contains(&byte) {
            f.write_char(char::from(byte))?;
        } else {
            write!(f, "%{byte:02X}")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "http://terminology.hl7.org/CodeSystem/observation-category|laboratory";
    const VITALS: &str = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs";

    fn scope(text: &str) -> Scope {
        Scope::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn resource(text: &str) -> ResourceScope {
        scope(text).as_resource().cloned().unwrap_or_else(|| panic!("`{text}` is not a resource scope"))
    }

    fn set(text: &str) -> ScopeSet {
        ScopeSet::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn perms(letters: &str) -> Permissions {
        Permissions::from_v2_letters(letters).unwrap()
    }

    fn filter(pairs: &[(&str, &str)]) -> Filter {
        pairs.iter().map(|&(p, v)| (p.to_owned(), v.to_owned())).collect()
    }

    fn lab_filter() -> Filter {
        filter(&[("category", LAB)])
    }

    #[track_caller]
    fn assert_rejected(text: &str, reason: &str) {
        let message = Scope::parse(text).expect_err(text).to_string();
        assert!(message.contains(&format!("`{text}`")), "message should name the scope: {message}");
        assert!(message.contains(reason), "expected {reason:?} in {message:?}");
    }

    // ---- parsing -------------------------------------------------------------------------------------------

    #[test]
    fn parses_v2_resource_scope() {
        assert_eq!(
            resource("patient/Observation.rs"),
            ResourceScope {
                context: Context::Patient,
                resource_type: Some("Observation".to_owned()),
                permissions: [Interaction::Read, Interaction::Search].into_iter().collect(),
                filter: Filter::new(),
            }
        );
    }

    #[test]
    fn parses_each_context_prefix() {
        assert_eq!(resource("patient/*.r").context, Context::Patient);
        assert_eq!(resource("user/*.r").context, Context::User);
        assert_eq!(resource("system/*.r").context, Context::System);
    }

    #[test]
    fn parses_wildcard_type_as_none() {
        assert_eq!(resource("user/*.cruds").resource_type, None);
        assert_eq!(resource("user/*.cruds").permissions, Permissions::ALL);
    }

    #[test]
    fn parses_every_single_v2_letter() {
        for interaction in Interaction::ALL {
            let parsed = resource(&format!("patient/Patient.{}", interaction.letter()));
            assert_eq!(parsed.permissions.iter().collect::<Vec<_>>(), vec![interaction]);
        }
    }

    #[test]
    fn maps_v1_permissions_to_v2() {
        assert_eq!(resource("patient/Observation.read").permissions, perms("rs"));
        assert_eq!(resource("user/*.write").permissions, perms("cud"));
        assert_eq!(resource("system/*.*").permissions, perms("cruds"));
        assert_eq!(resource("system/*.*").resource_type, None);
    }

    #[test]
    fn v1_and_v2_spellings_of_the_same_grant_are_equal() {
        assert_eq!(scope("patient/Observation.read"), scope("patient/Observation.rs"));
        assert_eq!(scope("user/*.*"), scope("user/*.cruds"));
    }

    #[test]
    fn parses_granular_filter_with_raw_pipe() {
        let parsed = resource(&format!("patient/Observation.rs?category={LAB}"));
        assert_eq!(parsed.filter, lab_filter());
    }

    #[test]
    fn percent_decodes_filter() {
        let parsed = resource(
            "patient/Observation.rs?category=http%3A%2F%2Fterminology.hl7.org%2FCodeSystem%2Fobservation-category%7Claboratory",
        );
        assert_eq!(parsed.filter, lab_filter());
    }

    #[test]
    fn percent_decodes_after_splitting_pairs() {
        let parsed = resource("user/DocumentReference.r?type=a%26b%3Dc&x%5Fy=%C3%A9");
        assert_eq!(parsed.filter, filter(&[("type", "a&b=c"), ("x_y", "é")]));
    }

    #[test]
    fn plus_is_kept_literally() {
        assert_eq!(resource("patient/Observation.r?code=a+b").filter, filter(&[("code", "a+b")]));
    }

    #[test]
    fn parses_multiple_filter_pairs_in_order() {
        let parsed = resource("patient/Condition.rs?category=problem-list-item&clinical-status=active");
        assert_eq!(parsed.filter, filter(&[("category", "problem-list-item"), ("clinical-status", "active")]));
    }

    #[test]
    fn parses_non_resource_scopes() {
        let cases = [
            ("openid", Scope::OpenId),
            ("fhirUser", Scope::FhirUser),
            ("profile", Scope::Profile),
            ("launch", Scope::Launch),
            ("launch/patient", Scope::LaunchPatient),
            ("launch/encounter", Scope::LaunchEncounter),
            ("offline_access", Scope::OfflineAccess),
            ("online_access", Scope::OnlineAccess),
        ];
        for (text, expected) in cases {
            assert_eq!(scope(text), expected, "{text}");
        }
    }

    #[test]
    fn unknown_scopes_become_other() {
        for text in ["foo", "email", "launch/xyz", "foo/bar.rs", "Patient/Observation.rs", "fhiruser"] {
            assert_eq!(scope(text), Scope::Other(text.to_owned()), "{text}");
        }
    }

    #[test]
    fn rejects_empty_scope() {
        assert!(Scope::parse("").unwrap_err().to_string().contains("empty scope"));
    }

    #[test]
    fn rejects_characters_outside_oauth_scope_tokens() {
        assert_rejected("patient/Observation.rs?code=a b", "not allowed in an OAuth scope");
        assert_rejected("foo\"bar", "not allowed in an OAuth scope");
        assert_rejected("caf\u{e9}", "not allowed in an OAuth scope");
    }

    #[test]
    fn rejects_bad_resource_type() {
        assert_rejected("patient/observation.rs", "neither `*` nor a FHIR resource type");
        assert_rejected("patient/1Observation.rs", "neither `*` nor a FHIR resource type");
        assert_rejected("patient/Obser-vation.rs", "neither `*` nor a FHIR resource type");
        assert_rejected("patient/**.rs", "neither `*` nor a FHIR resource type");
        assert_rejected("patient/.rs", "resource type is missing");
    }

    #[test]
    fn rejects_missing_permissions() {
        assert_rejected("patient/Observation", "expected `patient/<ResourceType>.<permissions>`");
        assert_rejected("user/", "expected `user/<ResourceType>.<permissions>`");
        assert_rejected("system/Observation?category=x", "expected `system/<ResourceType>.<permissions>`");
        assert_rejected("patient/Observation.", "permissions are missing");
        assert_rejected("patient/Observation.?category=x", "permissions are missing");
    }

    #[test]
    fn rejects_out_of_order_permissions() {
        assert_rejected("patient/Observation.sr", "at most once, in that order");
        assert_rejected("patient/Observation.dc", "at most once, in that order");
    }

    #[test]
    fn rejects_repeated_permissions() {
        assert_rejected("patient/Observation.rr", "at most once, in that order");
        assert_rejected("patient/Observation.crudss", "at most once, in that order");
    }

    #[test]
    fn rejects_unknown_permission_letters() {
        assert_rejected("patient/Observation.rx", "`x` is not a permission");
        assert_rejected("patient/Observation.R", "`R` is not a permission");
        assert_rejected("patient/Observation.reads", "`e` is not a permission");
        assert_rejected("patient/*.rs.x", "`.` is not a permission");
    }

    #[test]
    fn rejects_filter_on_v1_scope() {
        assert_rejected("patient/Observation.read?category=laboratory", "v1 `.read` cannot take a `?` query");
        assert_rejected("user/*.write?category=laboratory", "v1 `.write` cannot take a `?` query");
        assert_rejected("system/*.*?category=laboratory", "v1 `.*` cannot take a `?` query");
    }

    #[test]
    fn rejects_malformed_filters() {
        assert_rejected("patient/Observation.rs?", "at least one `param=value`");
        assert_rejected("patient/Observation.rs?category", "`category` in the filter is not a `param=value` pair");
        assert_rejected("patient/Observation.rs?a=1&&b=2", "empty `param=value` pair");
        assert_rejected("patient/Observation.rs?a=1&", "empty `param=value` pair");
        assert_rejected("patient/Observation.rs?=laboratory", "needs both a parameter name and a value");
        assert_rejected("patient/Observation.rs?category=", "needs both a parameter name and a value");
    }

    #[test]
    fn rejects_bad_percent_encoding() {
        assert_rejected("patient/Observation.rs?category=%zz", "not followed by two hex digits");
        assert_rejected("patient/Observation.rs?category=ab%4", "not followed by two hex digits");
        assert_rejected("patient/Observation.rs?category=%+1", "not followed by two hex digits");
        assert_rejected("patient/Observation.rs?category=%FF", "does not decode to UTF-8");
    }

    #[test]
    fn from_str_matches_parse() {
        assert_eq!("patient/*.rs".parse::<Scope>(), Scope::parse("patient/*.rs"));
        assert_eq!("openid patient/*.rs".parse::<ScopeSet>(), ScopeSet::parse("openid patient/*.rs"));
    }

    // ---- display -------------------------------------------------------------------------------------------

    #[test]
    fn permissions_display_in_cruds_order() {
        let mixed: Permissions = [Interaction::Search, Interaction::Create, Interaction::Read].into_iter().collect();
        assert_eq!(mixed.to_string(), "crs");
        assert_eq!(Permissions::ALL.to_string(), "cruds");
        assert_eq!(Permissions::NONE.to_string(), "");
    }

    #[test]
    fn displays_v1_input_in_v2_form() {
        assert_eq!(scope("patient/Observation.read").to_string(), "patient/Observation.rs");
        assert_eq!(scope("user/*.write").to_string(), "user/*.cud");
        assert_eq!(scope("system/*.*").to_string(), "system/*.cruds");
    }

    #[test]
    fn displays_filter_with_readable_token_and_escaped_delimiters() {
        let mut granular = resource("patient/Observation.rs");
        granular.filter = filter(&[("category", LAB), ("code", "a&b=c d%")]);
        assert_eq!(granular.to_string(), format!("patient/Observation.rs?category={LAB}&code=a%26b%3Dc%20d%25"));
    }

    #[test]
    fn display_round_trips_through_parse() {
        let cases = [
            "patient/*.rs",
            "user/Observation.cruds",
            "system/Patient.r",
            "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory",
            "user/DocumentReference.r?type=a%26b%3Dc&x_y=%C3%A9",
            "patient/Condition.rs?category=problem-list-item,encounter-diagnosis&clinical-status=active",
            "openid",
            "fhirUser",
            "profile",
            "launch",
            "launch/patient",
            "launch/encounter",
            "offline_access",
            "online_access",
            "launch/xyz",
        ];
        for text in cases {
            let parsed = scope(text);
            assert_eq!(parsed.to_string(), text, "canonical text should be stable");
            assert_eq!(scope(&parsed.to_string()), parsed, "{text}");
        }
    }

    #[test]
    fn constructed_filters_with_awkward_characters_round_trip() {
        let mut granular = resource("user/Observation.rs");
        granular.filter = filter(&[("a b", "x?y#z"), ("é", "100%"), ("q", "\"quoted\"\\")]);
        let text = Scope::Resource(granular.clone()).to_string();
        assert_eq!(resource(&text), granular, "{text}");
    }

    #[test]
    fn error_display_names_scope_and_problem() {
        let error = Scope::parse("patient/Observation.sr").unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid scope `patient/Observation.sr`: permissions `sr` must use each of `cruds` at most once, in that order"
        );
    }

    // ---- scope sets ----------------------------------------------------------------------------------------

    #[test]
    fn scope_set_removes_duplicates_and_keeps_order() {
        let scopes = set("openid patient/Observation.read launch/patient  patient/Observation.rs openid\tfoo");
        assert_eq!(scopes.to_string(), "openid patient/Observation.rs launch/patient foo");
        assert_eq!(scopes.len(), 4);
    }

    #[test]
    fn empty_scope_set() {
        let scopes = set("   ");
        assert!(scopes.is_empty());
        assert_eq!(scopes.to_string(), "");
    }

    #[test]
    fn scope_set_error_names_the_bad_scope() {
        let error = ScopeSet::parse("openid patient/observation.rs launch").unwrap_err();
        assert!(error.to_string().contains("`patient/observation.rs`"), "{error}");
    }

    #[test]
    fn scope_set_iterates_in_order() {
        let scopes = set("launch openid user/*.rs");
        let texts: Vec<String> = scopes.iter().map(Scope::to_string).collect();
        assert_eq!(texts, ["launch", "openid", "user/*.rs"]);
        assert_eq!((&scopes).into_iter().count(), 3);
    }

    #[test]
    fn contains_is_exact_after_normalisation() {
        let scopes = set("patient/Observation.read openid");
        assert!(scopes.contains(&scope("patient/Observation.rs")));
        assert!(scopes.contains(&Scope::OpenId));
        assert!(!scopes.contains(&scope("patient/Observation.r")));
        assert!(!scopes.contains(&scope("patient/*.rs")));
    }

    #[test]
    fn has_context_looks_only_at_resource_scopes() {
        let scopes = set("launch/patient openid user/Practitioner.r");
        assert!(scopes.has_context(Context::User));
        assert!(!scopes.has_context(Context::Patient));
        assert!(!scopes.has_context(Context::System));
    }

    // ---- allowed -------------------------------------------------------------------------------------------

    #[test]
    fn allowed_by_wildcard_type() {
        let scopes = set("patient/*.rs");
        assert_eq!(scopes.allowed(Context::Patient, "Observation", Interaction::Read), Allowed::All);
        assert_eq!(scopes.allowed(Context::Patient, "Condition", Interaction::Search), Allowed::All);
    }

    #[test]
    fn allowed_requires_the_interaction() {
        let scopes = set("patient/*.rs");
        assert_eq!(scopes.allowed(Context::Patient, "Observation", Interaction::Create), Allowed::No);
        assert_eq!(scopes.allowed(Context::Patient, "Observation", Interaction::Delete), Allowed::No);
    }

    #[test]
    fn allowed_requires_matching_type() {
        let scopes = set("patient/Observation.cruds");
        assert_eq!(scopes.allowed(Context::Patient, "Observation", Interaction::Update), Allowed::All);
        assert_eq!(scopes.allowed(Context::Patient, "Condition", Interaction::Read), Allowed::No);
    }

    #[test]
    fn allowed_requires_matching_context() {
        let scopes = set("patient/*.cruds openid");
        assert_eq!(scopes.allowed(Context::User, "Observation", Interaction::Read), Allowed::No);
        assert_eq!(scopes.allowed(Context::System, "Observation", Interaction::Read), Allowed::No);
    }

    #[test]
    fn allowed_where_filtered() {
        let scopes = set(&format!("patient/Observation.rs?category={LAB}"));
        assert_eq!(
            scopes.allowed(Context::Patient, "Observation", Interaction::Read),
            Allowed::Where(vec![lab_filter()])
        );
        assert_eq!(scopes.allowed(Context::Patient, "Observation", Interaction::Create), Allowed::No);
    }

    #[test]
    fn allowed_where_is_the_union_of_filters_without_duplicates() {
        let scopes = set(&format!(
            "patient/Observation.rs?category={LAB} patient/*.r?category={VITALS} patient/Observation.r?category={LAB}"
        ));
        assert_eq!(
            scopes.allowed(Context::Patient, "Observation", Interaction::Read),
            Allowed::Where(vec![lab_filter(), filter(&[("category", VITALS)])])
        );
        assert_eq!(
            scopes.allowed(Context::Patient, "Observation", Interaction::Search),
            Allowed::Where(vec![lab_filter()])
        );
    }

    #[test]
    fn unfiltered_scope_overrides_filtered_ones() {
        let scopes = set(&format!("patient/Observation.rs?category={LAB} patient/*.r"));
        assert_eq!(scopes.allowed(Context::Patient, "Observation", Interaction::Read), Allowed::All);
        assert_eq!(
            scopes.allowed(Context::Patient, "Observation", Interaction::Search),
            Allowed::Where(vec![lab_filter()])
        );
    }

    #[test]
    fn allowed_from_v1_scopes() {
        let scopes = set("user/*.read user/Observation.write");
        assert_eq!(scopes.allowed(Context::User, "Patient", Interaction::Search), Allowed::All);
        assert_eq!(scopes.allowed(Context::User, "Observation", Interaction::Create), Allowed::All);
        assert_eq!(scopes.allowed(Context::User, "Patient", Interaction::Update), Allowed::No);
    }

    // ---- narrow_to -----------------------------------------------------------------------------------------

    #[test]
    fn narrows_wildcard_request_to_registered_types() {
        let granted = set("patient/*.cruds").narrow_to(&set("patient/Observation.rs patient/Patient.r"));
        assert_eq!(granted.to_string(), "patient/Observation.rs patient/Patient.r");
    }

    #[test]
    fn narrows_v1_request_under_wildcard_ceiling() {
        assert_eq!(set("user/Observation.read").narrow_to(&set("user/*.rs")).to_string(), "user/Observation.rs");
    }

    #[test]
    fn narrowing_intersects_permissions() {
        assert_eq!(
            set("patient/Observation.crs").narrow_to(&set("patient/*.rds")).to_string(),
            "patient/Observation.rs"
        );
    }

    #[test]
    fn narrowing_drops_disjoint_requests() {
        let ceiling = set("patient/Observation.rs user/Patient.r");
        assert!(set("patient/Condition.rs").narrow_to(&ceiling).is_empty(), "different type");
        assert!(set("patient/Observation.cud").narrow_to(&ceiling).is_empty(), "no shared permission");
        assert!(set("user/Observation.rs").narrow_to(&ceiling).is_empty(), "different context");
        assert!(set("system/*.cruds").narrow_to(&ceiling).is_empty(), "context not registered");
    }

    #[test]
    fn narrowing_applies_ceiling_filter_to_unfiltered_request() {
        let granted = set("patient/Observation.rs").narrow_to(&set(&format!("patient/Observation.rs?category={LAB}")));
        assert_eq!(granted.to_string(), format!("patient/Observation.rs?category={LAB}"));
    }

    #[test]
    fn narrowing_keeps_request_filter_under_unfiltered_ceiling() {
        let granted = set(&format!("patient/Observation.rs?category={LAB}")).narrow_to(&set("patient/*.r"));
        assert_eq!(granted.to_string(), format!("patient/Observation.r?category={LAB}"));
    }

    #[test]
    fn narrowing_keeps_equal_filters() {
        let text = format!("patient/Observation.rs?category={LAB}");
        assert_eq!(set(&text).narrow_to(&set(&text)).to_string(), text);
    }

    #[test]
    fn narrowing_drops_conflicting_filters() {
        let requested = set(&format!("patient/Observation.rs?category={LAB}"));
        let ceiling = set(&format!("patient/Observation.rs?category={VITALS}"));
        assert!(requested.narrow_to(&ceiling).is_empty());
    }

    #[test]
    fn narrowing_keeps_the_stricter_of_nested_filters() {
        let stricter = format!("patient/Observation.rs?category={LAB}&status=final");
        let looser = format!("patient/Observation.rs?category={LAB}");
        assert_eq!(set(&stricter).narrow_to(&set(&looser)).to_string(), stricter);
        assert_eq!(set(&looser).narrow_to(&set(&stricter)).to_string(), stricter);
    }

    #[test]
    fn narrowing_keeps_only_registered_non_resource_scopes() {
        let granted =
            set("openid fhirUser offline_access launch/patient foo").narrow_to(&set("openid fhirUser launch/patient"));
        assert_eq!(granted.to_string(), "openid fhirUser launch/patient");
    }

    #[test]
    fn narrowing_deduplicates_intersections() {
        let granted = set("patient/Observation.rs patient/*.r").narrow_to(&set("patient/Observation.r"));
        assert_eq!(granted.to_string(), "patient/Observation.r");
    }

    #[test]
    fn narrowed_result_is_covered_by_request_and_ceiling() {
        let requested =
            set(&format!("patient/*.cruds user/Observation.rs?category={LAB} openid launch offline_access"));
        let ceiling = set("patient/Observation.rs patient/Condition.cud user/*.r openid launch");
        let granted = requested.narrow_to(&ceiling);
        assert_eq!(
            granted.to_string(),
            format!("patient/Observation.rs patient/Condition.cud user/Observation.r?category={LAB} openid launch")
        );
        assert!(granted.is_covered_by(&requested));
        assert!(granted.is_covered_by(&ceiling));
    }

    // ---- is_covered_by -------------------------------------------------------------------------------------

    #[test]
    fn identical_and_narrower_sets_are_covered() {
        let granted = set("patient/Observation.rs openid launch/patient");
        assert!(granted.is_covered_by(&granted));
        assert!(set("patient/Observation.r launch/patient").is_covered_by(&granted));
        assert!(ScopeSet::default().is_covered_by(&granted));
    }

    #[test]
    fn permission_escalation_is_not_covered() {
        assert!(!set("patient/Observation.cruds").is_covered_by(&set("patient/Observation.rs")));
        assert!(!set("patient/Observation.rs").is_covered_by(&set("patient/Observation.r")));
        assert!(!set("patient/Observation.write").is_covered_by(&set("patient/Observation.read")));
    }

    #[test]
    fn type_widening_is_not_covered() {
        assert!(!set("patient/*.rs").is_covered_by(&set("patient/Observation.rs")));
        assert!(!set("patient/Condition.rs").is_covered_by(&set("patient/Observation.rs")));
        assert!(set("patient/Condition.rs").is_covered_by(&set("patient/*.rs")));
    }

    #[test]
    fn context_change_is_not_covered() {
        assert!(!set("user/Observation.rs").is_covered_by(&set("patient/Observation.rs")));
        assert!(!set("system/*.rs").is_covered_by(&set("user/*.cruds")));
    }

    #[test]
    fn filter_removal_is_not_covered() {
        let filtered = set(&format!("patient/Observation.rs?category={LAB}"));
        assert!(!set("patient/Observation.rs").is_covered_by(&filtered));
        assert!(!set(&format!("patient/Observation.rs?category={VITALS}")).is_covered_by(&filtered));
        assert!(filtered.is_covered_by(&set("patient/Observation.rs")));
        assert!(filtered.is_covered_by(&filtered));
    }

    #[test]
    fn adding_filter_conditions_stays_covered() {
        let filtered = set(&format!("patient/Observation.rs?category={LAB}"));
        assert!(set(&format!("patient/Observation.r?status=final&category={LAB}")).is_covered_by(&filtered));
    }

    #[test]
    fn one_scope_outside_makes_the_set_uncovered() {
        let granted = set("patient/*.rs openid");
        assert!(!set("patient/Observation.rs offline_access").is_covered_by(&granted));
        assert!(!set("patient/Observation.rs patient/Observation.c").is_covered_by(&granted));
    }

    #[test]
    fn non_resource_scopes_are_covered_only_by_equal_ones() {
        assert!(set("foo launch").is_covered_by(&set("launch foo")));
        assert!(!set("launch/patient").is_covered_by(&set("launch")));
        assert!(!set("online_access").is_covered_by(&set("offline_access")));
        assert!(!set("foo").is_covered_by(&set("patient/*.cruds")));
    }

    // ---- without -------------------------------------------------------------------------------------------

    #[test]
    fn without_removes_by_display_text_and_keeps_order() {
        let requested =
            set(&format!("openid patient/Observation.rs?category={LAB} patient/Condition.rs offline_access"));
        let removed = [format!("patient/Observation.rs?category={LAB}"), "offline_access".to_owned()];
        assert_eq!(requested.without(&removed).to_string(), "openid patient/Condition.rs");
    }

    #[test]
    fn without_accepts_original_v1_spelling() {
        let requested = set("patient/Observation.read patient/Condition.read");
        assert_eq!(requested.without(&["patient/Observation.read".to_owned()]).to_string(), "patient/Condition.rs");
    }

    #[test]
    fn without_ignores_unknown_and_non_matching_text() {
        let requested = set("openid patient/Observation.rs");
        let removed = ["patient/Observation.r".to_owned(), "not a scope!".to_owned(), String::new()];
        assert_eq!(requested.without(&removed), requested);
    }

    // ---- describe ------------------------------------------------------------------------------------------

    #[test]
    fn describes_patient_facing_resource_scopes() {
        assert_eq!(describe(&scope("patient/AllergyIntolerance.rs"), true), "See and search your allergies");
        assert_eq!(describe(&scope("patient/Patient.r"), true), "See your basic information");
        assert_eq!(describe(&scope("patient/*.read"), true), "See and search all your health records");
        assert_eq!(
            describe(&scope("patient/Observation.cu"), true),
            "Add and change your observations such as vital signs and lab results"
        );
    }

    #[test]
    fn describes_patient_facing_user_scopes() {
        assert_eq!(describe(&scope("user/Appointment.rs"), true), "See and search appointments you have access to");
        assert_eq!(describe(&scope("user/*.r"), true), "See all health records you have access to");
    }

    #[test]
    fn describes_clinician_scopes_per_context() {
        assert_eq!(
            describe(&scope("patient/Encounter.cruds"), false),
            "See, search, add, change and delete visits of the current patient"
        );
        assert_eq!(
            describe(&scope("user/Condition.rs"), false),
            "See and search problems and diagnoses of any patient you have access to"
        );
        assert_eq!(describe(&scope("system/*.rs"), false), "See and search all kinds of records for a backend system");
        assert_eq!(describe(&scope("patient/Patient.r"), false), "See demographics of the current patient");
        assert_eq!(describe(&scope("patient/*.d"), false), "Delete all kinds of records of the current patient");
    }

    #[test]
    fn describes_friendly_type_names() {
        assert_eq!(describe(&scope("patient/MedicationRequest.r"), true), "See your prescriptions");
        assert_eq!(describe(&scope("patient/Coverage.r"), true), "See your insurance coverage");
        assert_eq!(describe(&scope("patient/Immunization.r"), true), "See your immunizations");
    }

    #[test]
    fn describes_unknown_types_by_splitting_camel_case() {
        assert_eq!(
            describe(&scope("patient/QuestionnaireResponse.c"), true),
            "Add your questionnaire response records"
        );
        assert_eq!(
            describe(&scope("user/NutritionOrder.r"), false),
            "See nutrition order records of any patient you have access to"
        );
    }

    #[test]
    fn describes_filters_by_their_codes() {
        assert_eq!(
            describe(&scope(&format!("patient/Observation.rs?category={LAB}")), true),
            "See and search your observations such as vital signs and lab results (only where category is laboratory)"
        );
        assert_eq!(
            describe(
                &scope("user/Condition.r?category=problem-list-item,encounter-diagnosis&clinical-status=active"),
                false
            ),
            "See problems and diagnoses of any patient you have access to \
             (only where category is problem-list-item or encounter-diagnosis and clinical status is active)"
        );
    }

    #[test]
    fn describes_identity_and_session_scopes() {
        assert!(describe(&Scope::OpenId, true).contains("who you are"));
        assert!(describe(&Scope::FhirUser, false).contains("Know who you are"));
        assert_eq!(
            describe(&Scope::OfflineAccess, true),
            "Keep access when you are not using the app (until you revoke it)"
        );
        assert_eq!(describe(&Scope::OnlineAccess, false), "Keep access while you are signed in");
    }

    #[test]
    fn describes_launch_scopes_per_audience() {
        assert_eq!(describe(&Scope::LaunchPatient, true), "Use your record when the app starts");
        assert_eq!(describe(&Scope::LaunchPatient, false), "Choose a patient when the app starts");
        assert_eq!(describe(&Scope::Launch, false), "Open in the context of the patient you are viewing");
        assert_ne!(describe(&Scope::Launch, true), describe(&Scope::Launch, false));
    }

    #[test]
    fn describes_other_scopes_verbatim() {
        assert_eq!(describe(&scope("email"), true), "email");
    }

    #[test]
    fn descriptions_never_show_scope_syntax() {
        for text in ["patient/*.cruds", "user/Observation.rs", "system/Patient.r", "launch/patient", "launch/encounter"]
        {
            for patient_facing in [true, false] {
                let words = describe(&scope(text), patient_facing);
                assert!(!words.contains('/') && !words.contains('*') && !words.contains('.'), "{words}");
            }
        }
    }

    // ---- permissions ---------------------------------------------------------------------------------------

    #[test]
    fn permission_set_operations() {
        assert!(perms("rs").is_subset_of(perms("cruds")));
        assert!(!perms("rs").is_subset_of(perms("r")));
        assert!(Permissions::NONE.is_subset_of(perms("r")));
        assert_eq!(perms("crs").intersection(perms("rud")), perms("r"));
        assert!(perms("c").intersection(perms("s")).is_empty());
        assert!(perms("cd").contains(Interaction::Delete));
        assert!(!perms("cd").contains(Interaction::Read));
    }
}
