//! Server-rendered HTML pages of Kiln's OAuth2 / SMART-on-FHIR authorization server: sign-in, MFA, consent,
//! patient picker, EHR app launcher, connected apps, and error/info pages.
//!
//! Each page is a plain data struct rendered by one function. Every value reaches the HTML through the template
//! engine's escaping, so callers pass raw, unescaped strings (including user- and app-supplied ones). The pages
//! contain no JavaScript; every state-changing form is a POST carrying a hidden `csrf` input.

use std::sync::LazyLock;

use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, context, syntax::SyntaxConfig};
use serde::Serialize;

/// Where the header's "Sign out" form posts (with the page's CSRF token) on pages shown to a signed-in user.
pub const SIGN_OUT_ACTION: &str = "/auth/logout";

/// A link to an external identity provider, e.g. the clinic's single sign-on.
#[derive(Debug, Clone, Serialize)]
pub struct IdpLink {
    /// Shown as "Sign in with {name}".
    pub name: String,
    /// Must come from server configuration: escaping stops markup injection but not a `javascript:` URL.
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignInPage {
    /// The page heading, e.g. "Sign in to continue to Growth Chart".
    pub title: String,
    pub app_name: Option<String>,
    /// Form action URL.
    pub action: String,
    /// (name, value) pairs carried through the form, e.g. the pending authorization request. Must not reuse the
    /// form's own field names (`csrf`, `username`, `password`); debug builds panic if one does.
    pub hidden: Vec<(String, String)>,
    pub csrf: String,
    /// Refilled after a failed attempt so the user only retypes the password.
    pub username: String,
    pub error: Option<String>,
    pub identity_provider: Option<IdpLink>,
}

/// The one-time code step after a correct password; the code is posted as `code`.
#[derive(Debug, Clone, Serialize)]
pub struct MfaPage {
    pub action: String,
    /// Must not reuse `csrf` or `code`.
    pub hidden: Vec<(String, String)>,
    pub csrf: String,
    pub error: Option<String>,
    pub user_display: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PatientBanner {
    pub name: String,
    pub birth_date: Option<String>,
    pub mrn: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ScopeChoice {
    /// The raw scope, e.g. `patient/Observation.rs`; submitted as a `scope` field.
    pub value: String,
    /// What the scope lets the app do, in plain words.
    pub description: String,
    /// Shown ticked and unchangeable, and always submitted.
    pub required: bool,
}

/// Posts `decision` = `allow` | `deny` and one `scope` field per scope the user left ticked.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentPage {
    pub app_name: String,
    /// Shown as text only: it comes from the app's registration.
    pub app_uri: Option<String>,
    pub user_display: String,
    /// Wording for a patient sharing their own record rather than a clinician granting access to patients.
    pub patient_facing: bool,
    pub patient_banner: Option<PatientBanner>,
    pub scopes: Vec<ScopeChoice>,
    /// For a standalone `launch/encounter`: the patient's encounters to choose from, posted as
    /// `encounter` (newest first, the first preselected); empty for no choice.
    pub encounters: Vec<EncounterRow>,
    pub action: String,
    /// Must not reuse `csrf`, `scope` or `decision`: in particular, leave out the request's own `scope`, since the
    /// submitted `scope` fields are the user's answer.
    pub hidden: Vec<(String, String)>,
    pub csrf: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct PatientRow {
    pub id: String,
    pub name: String,
    pub birth_date: Option<String>,
    /// FHIR administrative gender code, shown capitalised.
    pub gender: Option<String>,
    pub mrn: Option<String>,
}

/// Searches with GET `name`, `birthdate`, `mrn` (plus the hidden pairs) to `action`; choosing posts `patient` = id
/// to the same `action`.
#[derive(Debug, Clone, Serialize)]
pub struct PatientPickerPage {
    pub action: String,
    /// Carried by both the search and the choose forms, so must not reuse `csrf`, `patient`, `name`, `birthdate`
    /// or `mrn`.
    pub hidden: Vec<(String, String)>,
    pub csrf: String,
    /// The current search inputs, refilled into the search form.
    pub name: String,
    pub birth_date: String,
    pub mrn: String,
    pub results: Vec<PatientRow>,
    /// Whether a search ran, so that an empty result says "No patients match" rather than nothing.
    pub searched: bool,
    pub user_display: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EncounterRow {
    pub id: String,
    /// E.g. "2024-03-01 ambulatory visit".
    pub label: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SelectedPatient {
    pub id: String,
    pub name: String,
    pub birth_date: Option<String>,
    pub mrn: Option<String>,
    pub encounters: Vec<EncounterRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AppRow {
    pub client_id: String,
    pub name: String,
}

/// The EHR launcher: searches with GET `name`, `birthdate`, `mrn` to `search_action`, links each result to
/// `?patient=<id>`, and launches by posting `patient`, `encounter` (empty for none) and `client_id` to
/// `launch_action`.
#[derive(Debug, Clone, Serialize)]
pub struct LauncherPage {
    pub user_display: String,
    pub csrf: String,
    pub search_action: String,
    pub name: String,
    pub birth_date: String,
    pub mrn: String,
    pub results: Vec<PatientRow>,
    pub selected: Option<SelectedPatient>,
    pub apps: Vec<AppRow>,
    pub launch_action: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectedApp {
    pub client_id: String,
    pub name: String,
    /// When access was granted, already formatted for display.
    pub granted: String,
    /// Descriptions of the granted scopes.
    pub scopes: Vec<String>,
}

/// Revoking posts `client_id` to `revoke_action`.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectedAppsPage {
    pub user_display: String,
    pub csrf: String,
    pub revoke_action: String,
    pub apps: Vec<ConnectedApp>,
    /// A one-off message such as "Access for Growth Chart was revoked."
    pub notice: Option<String>,
}

/// For errors that cannot be sent back to the app, such as an unknown client or an unregistered redirect URI.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorPage {
    pub title: String,
    pub message: String,
}

/// A simple message, e.g. after signing out.
#[derive(Debug, Clone, Serialize)]
pub struct InfoPage {
    pub title: String,
    pub message: String,
}

pub fn render_sign_in(page: &SignInPage) -> String {
    debug_assert_no_clash(&page.hidden, &["csrf", "username", "password"]);
    render("sign_in.html", page, None)
}

pub fn render_mfa(page: &MfaPage) -> String {
    debug_assert_no_clash(&page.hidden, &["csrf", "code"]);
    // Not signed in yet: the password is only half of it, so no sign-out header.
    render("mfa.html", page, None)
}

pub fn render_consent(page: &ConsentPage) -> String {
    debug_assert_no_clash(&page.hidden, &["csrf", "scope", "decision", "encounter"]);
    render("consent.html", page, Some(Session { user_display: &page.user_display, csrf: &page.csrf }))
}

pub fn render_patient_picker(page: &PatientPickerPage) -> String {
    debug_assert_no_clash(&page.hidden, &["csrf", "patient", "name", "birthdate", "mrn"]);
    render("patient_picker.html", page, Some(Session { user_display: &page.user_display, csrf: &page.csrf }))
}

pub fn render_launcher(page: &LauncherPage) -> String {
    render("launcher.html", page, Some(Session { user_display: &page.user_display, csrf: &page.csrf }))
}

pub fn render_connected_apps(page: &ConnectedAppsPage) -> String {
    render("connected_apps.html", page, Some(Session { user_display: &page.user_display, csrf: &page.csrf }))
}

pub fn render_error(page: &ErrorPage) -> String {
    render("error.html", page, None)
}

pub fn render_info(page: &InfoPage) -> String {
    render("info.html", page, None)
}

/// A hidden pair named like one of the form's own fields would be submitted next to the user's answer, and which
/// one the server reads first is anyone's guess.
fn debug_assert_no_clash(hidden: &[(String, String)], own_fields: &[&str]) {
    debug_assert!(
        hidden.iter().all(|(name, _)| !own_fields.contains(&name.as_str())),
        "hidden pairs must not reuse the form's own field names {own_fields:?}"
    );
}

/// What the shared header needs to show the signed-in user and a sign-out form.
#[derive(Serialize)]
struct Session<'a> {
    user_display: &'a str,
    csrf: &'a str,
}

const TEMPLATES: &[(&str, &str)] = &[
    ("layout.html", include_str!("pages/templates/layout.html")),
    ("macros.html", include_str!("pages/templates/macros.html")),
    ("sign_in.html", include_str!("pages/templates/sign_in.html")),
    ("mfa.html", include_str!("pages/templates/mfa.html")),
    ("consent.html", include_str!("pages/templates/consent.html")),
    ("patient_picker.html", include_str!("pages/templates/patient_picker.html")),
    ("launcher.html", include_str!("pages/templates/launcher.html")),
    ("connected_apps.html", include_str!("pages/templates/connected_apps.html")),
    ("error.html", include_str!("pages/templates/error.html")),
    ("info.html", include_str!("pages/templates/info.html")),
];

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    // Every template here is HTML; escaping must not hinge on a file-name convention.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // A misspelt field must fail the tests, not render as an empty string.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().expect("default delimiters are valid"),
    );
    for (name, source) in TEMPLATES {
        env.add_template(name, source).unwrap_or_else(|err| panic!("page template {name} does not compile: {err:#}"));
    }
    env
});

fn render<P: Serialize>(template: &str, page: &P, session: Option<Session<'_>>) -> String {
    let ctx = context! {
        page => Value::from(Serde(page)),
        session => Value::from(Serde(session)),
        sign_out_action => SIGN_OUT_ACTION,
    };
    // The templates are compiled in and every one is rendered by the tests, so a failure here is a bug in this
    // module, not something a caller could handle.
    ENV.get_template(template)
        .and_then(|template| template.render(ctx))
        .unwrap_or_else(|err| panic!("page template {template} failed to render: {err:#}"))
}

#[cfg(test)]
mod tests;
