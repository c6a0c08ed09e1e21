use std::collections::HashSet;

use super::*;

// A small start-tag reader is enough here: the templates always double-quote attribute values and the engine
// escapes every `"`, `<` and `>` inside them, so quotes and angle brackets delimit reliably. Reading the markup
// back (rather than searching for escaped substrings) checks both the escaping and what a browser would see.

#[derive(Debug)]
struct Tag {
    name: String,
    attrs: Vec<(String, String)>,
}

impl Tag {
    fn get(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn is(&self, name: &str, attrs: &[(&str, &str)]) -> bool {
        self.name == name && attrs.iter().all(|(n, v)| self.get(n) == Some(v))
    }
}

fn decode(s: &str) -> String {
    // `&amp;` last, so that an escaped entity such as `&amp;lt;` decodes once, as a browser would.
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

fn tags(html: &str) -> Vec<Tag> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find('<') {
        rest = &rest[i + 1..];
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue; // end tag, comment or doctype
        }
        let name_len = rest.find(|c: char| !c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        let name = rest[..name_len].to_ascii_lowercase();
        rest = &rest[name_len..];
        let mut attrs = Vec::new();
        loop {
            rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix('>') {
                rest = r;
                break;
            }
            let attr_len = rest.find(|c: char| c.is_whitespace() || c == '=' || c == '>').expect("unterminated tag");
            assert!(attr_len > 0, "malformed tag <{name} near {:?}", &rest[..rest.len().min(40)]);
            let attr = rest[..attr_len].to_ascii_lowercase();
            rest = &rest[attr_len..];
            let value = if let Some(r) = rest.strip_prefix("=\"") {
                let end = r.find('"').expect("unterminated attribute value");
                rest = &r[end + 1..];
                decode(&r[..end])
            } else {
                assert!(!rest.starts_with('='), "unquoted value for {attr} in <{name}>");
                String::new()
            };
            attrs.push((attr, value));
        }
        out.push(Tag { name, attrs });
    }
    out
}

struct Form {
    tag: Tag,
    inner: Vec<Tag>,
    html: String,
}

impl Form {
    fn hidden(&self) -> Vec<(String, String)> {
        self.inner
            .iter()
            .filter(|t| t.is("input", &[("type", "hidden")]))
            .map(|t| (t.get("name").unwrap_or_default().to_owned(), t.get("value").unwrap_or_default().to_owned()))
            .collect()
    }

    fn csrf_values(&self) -> Vec<String> {
        self.hidden().into_iter().filter(|(n, _)| n == "csrf").map(|(_, v)| v).collect()
    }

    fn buttons(&self) -> Vec<&Tag> {
        self.inner.iter().filter(|t| t.name == "button").collect()
    }
}

fn forms(html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        let end = rest[start..].find("</form>").expect("unclosed form") + start;
        let mut found = tags(&rest[start..end]);
        let tag = found.remove(0);
        out.push(Form { tag, inner: found, html: rest[start..end].to_owned() });
        rest = &rest[end..];
    }
    out
}

fn post_forms_to(html: &str, action: &str) -> Vec<Form> {
    forms(html).into_iter().filter(|f| f.tag.is("form", &[("method", "post"), ("action", action)])).collect()
}

/// Text of the first `<tag>…</tag>`: inner tags become spaces, whitespace collapses, entities are decoded.
fn text_of(html: &str, tag: &str) -> String {
    let open = html.find(&format!("<{tag}")).unwrap_or_else(|| panic!("no <{tag}>"));
    let body_start = html[open..].find('>').unwrap() + open + 1;
    let body_end = html[body_start..].find(&format!("</{tag}>")).unwrap() + body_start;
    let mut text = String::new();
    let mut in_tag = false;
    for c in html[body_start..body_end].chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    decode(text.split_whitespace().collect::<Vec<_>>().join(" ").as_str())
}

/// Form controls a screen reader would announce without a name: no `id`, or no `<label for>` naming it.
fn unlabelled_controls(html: &str) -> Vec<String> {
    let all = tags(html);
    let labelled: HashSet<&str> = all.iter().filter(|t| t.name == "label").filter_map(|t| t.get("for")).collect();
    all.iter()
        .filter(|t| {
            (t.name == "input" && t.get("type") != Some("hidden")) || t.name == "select" || t.name == "textarea"
        })
        .filter(|t| !t.get("id").is_some_and(|id| labelled.contains(id)))
        .map(|t| format!("{t:?}"))
        .collect()
}

/// What every page must satisfy, whatever it shows.
fn assert_common(html: &str) {
    assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"), "doctype and lang: {}", &html[..60]);
    let all = tags(html);
    assert!(
        all.iter().any(|t| t.is("meta", &[("name", "viewport"), ("content", "width=device-width, initial-scale=1")])),
        "viewport meta"
    );
    let title = text_of(html, "title");
    assert!(title.ends_with(" · Kiln") && title.len() > " · Kiln".len(), "title {title:?}");
    assert!(!html.to_ascii_lowercase().contains("<script"), "a page must carry no JavaScript");
    assert!(!html.to_ascii_lowercase().contains("javascript:"), "a page must carry no JavaScript");
    for tag in &all {
        assert!(!tag.attrs.iter().any(|(n, _)| n.starts_with("on")), "event handler attribute in {tag:?}");
        if tag.name == "button" {
            assert_eq!(tag.get("type"), Some("submit"), "buttons say what they do: {tag:?}");
        }
    }
    assert_eq!(unlabelled_controls(html), Vec::<String>::new(), "every visible control needs a <label for>");
    let ids: Vec<&str> = all.iter().filter_map(|t| t.get("id")).collect();
    assert_eq!(ids.len(), ids.iter().collect::<HashSet<_>>().len(), "duplicate ids: {ids:?}");
    for form in forms(html) {
        match form.tag.get("method") {
            Some("post") => {
                let csrf = form.csrf_values();
                assert!(csrf.len() == 1 && !csrf[0].is_empty(), "POST form needs one csrf input: {}", form.html);
            }
            // A token in a GET form would end up in URLs, logs and Referer headers.
            Some("get") => assert!(form.csrf_values().is_empty(), "csrf in a GET form: {}", form.html),
            other => panic!("form without an explicit method ({other:?}): {}", form.html),
        }
    }
}

fn authz_hidden() -> Vec<(String, String)> {
    [
        ("response_type", "code"),
        ("client_id", "growth-chart"),
        ("redirect_uri", "https://growth.example/callback?x=1&y=2"),
        ("scope", "launch/patient openid patient/Observation.rs"),
        ("state", "st\"ate'<b>"),
        ("aud", "https://kiln.example/fhir"),
        ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
        ("code_challenge_method", "S256"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect()
}

/// The consent form's own `scope` fields carry the user's choice, so the request's scope is not carried along.
fn consent_hidden() -> Vec<(String, String)> {
    authz_hidden().into_iter().filter(|(name, _)| name != "scope").collect()
}

fn sign_in() -> SignInPage {
    SignInPage {
        title: "Sign in to continue to Growth Chart".into(),
        app_name: Some("Growth Chart".into()),
        action: "/auth/authorize/sign-in".into(),
        hidden: authz_hidden(),
        csrf: "csrf-sign-in-123".into(),
        username: String::new(),
        error: None,
        identity_provider: None,
    }
}

fn mfa() -> MfaPage {
    MfaPage {
        action: "/auth/authorize/mfa".into(),
        hidden: authz_hidden(),
        csrf: "csrf-mfa-456".into(),
        error: None,
        user_display: "Ana O'Neil".into(),
    }
}

fn consent() -> ConsentPage {
    ConsentPage {
        app_name: "Growth Chart".into(),
        app_uri: Some("https://growth.example".into()),
        user_display: "Ana O'Neil".into(),
        patient_facing: true,
        patient_banner: None,
        scopes: vec![
            ScopeChoice { value: "openid".into(), description: "Know who you are".into(), required: true },
            ScopeChoice {
                value: "patient/Observation.rs".into(),
                description: "Read your measurements and lab results".into(),
                required: false,
            },
            ScopeChoice {
                value: "patient/Condition.rs".into(),
                description: "Read your conditions".into(),
                required: false,
            },
        ],
        encounters: vec![],
        action: "/auth/authorize/consent".into(),
        hidden: consent_hidden(),
        csrf: "csrf-consent-789".into(),
    }
}

fn row(id: &str, name: &str, birth_date: &str, gender: &str, mrn: &str) -> PatientRow {
    PatientRow {
        id: id.into(),
        name: name.into(),
        birth_date: Some(birth_date.into()),
        gender: Some(gender.into()),
        mrn: Some(mrn.into()),
    }
}

fn picker() -> PatientPickerPage {
    PatientPickerPage {
        action: "/auth/authorize/patient".into(),
        hidden: authz_hidden(),
        csrf: "csrf-picker-1".into(),
        name: "smith".into(),
        birth_date: "2019-04-02".into(),
        mrn: String::new(),
        results: vec![
            row("pat-1", "Jamie Smith", "2019-04-02", "female", "MRN-0001"),
            PatientRow { id: "pat-2".into(), name: "Alex Smith".into(), birth_date: None, gender: None, mrn: None },
        ],
        searched: true,
        user_display: "Dr. Lee".into(),
    }
}

fn launcher() -> LauncherPage {
    LauncherPage {
        user_display: "Dr. Lee".into(),
        csrf: "csrf-launch-2".into(),
        search_action: "/ehr/launch".into(),
        name: "smith".into(),
        birth_date: String::new(),
        mrn: String::new(),
        results: vec![row("pat-1", "Jamie Smith", "2019-04-02", "female", "MRN-0001")],
        selected: Some(SelectedPatient {
            id: "pat-1".into(),
            name: "Jamie Smith".into(),
            birth_date: Some("2019-04-02".into()),
            mrn: Some("MRN-0001".into()),
            encounters: vec![
                EncounterRow { id: "enc-9".into(), label: "2024-03-01 ambulatory visit".into() },
                EncounterRow { id: "enc-7".into(), label: "2023-11-12 emergency".into() },
            ],
        }),
        apps: vec![
            AppRow { client_id: "growth-chart".into(), name: "Growth Chart".into() },
            AppRow { client_id: "med-rec".into(), name: "Med Reconciliation".into() },
        ],
        launch_action: "/ehr/launch/start".into(),
    }
}

fn connected() -> ConnectedAppsPage {
    ConnectedAppsPage {
        user_display: "Ana O'Neil".into(),
        csrf: "csrf-apps-3".into(),
        revoke_action: "/account/apps/revoke".into(),
        apps: vec![
            ConnectedApp {
                client_id: "growth-chart".into(),
                name: "Growth Chart".into(),
                granted: "2024-05-01".into(),
                scopes: vec!["Know who you are".into(), "Read your measurements and lab results".into()],
            },
            ConnectedApp {
                client_id: "diary".into(),
                name: "Symptom Diary".into(),
                granted: "2024-06-12".into(),
                scopes: vec!["Read and write your observations".into()],
            },
        ],
        notice: None,
    }
}

fn error_page() -> ErrorPage {
    ErrorPage {
        title: "This app cannot sign you in".into(),
        message: "The redirect address https://evil.example/cb is not registered for this app.".into(),
    }
}

fn info_page() -> InfoPage {
    InfoPage { title: "Signed out".into(), message: "You have signed out of Kiln.".into() }
}

fn all_pages() -> Vec<(&'static str, String)> {
    vec![
        ("sign in", render_sign_in(&sign_in())),
        ("mfa", render_mfa(&mfa())),
        ("consent", render_consent(&consent())),
        ("picker", render_patient_picker(&picker())),
        ("launcher", render_launcher(&launcher())),
        ("connected apps", render_connected_apps(&connected())),
        ("error", render_error(&error_page())),
        ("info", render_info(&info_page())),
    ]
}

#[test]
fn every_page_has_lang_viewport_labels_and_csrf_on_post_forms() {
    for (name, html) in all_pages() {
        eprintln!("checking {name}");
        assert_common(&html);
        assert_eq!(text_of(&html, "header").split_whitespace().next(), Some("Kiln"), "{name}: header names Kiln");
    }
}

#[test]
fn label_check_reports_unlabelled_and_mislabelled_controls() {
    let html = r#"<label for="a">A</label><input id="a" type="text"><input type="hidden" name="h" value="1">
        <input id="b" type="text"><label for="x">X</label><select id="c"></select><input type="checkbox">"#;
    let missing = unlabelled_controls(html);
    assert_eq!(missing.len(), 3, "{missing:?}");
    assert!(missing[0].contains("\"b\"") && missing[1].contains("\"c\"") && missing[2].contains("checkbox"));
}

#[test]
fn header_shows_user_and_sign_out_form_only_when_signed_in() {
    let signed_in = [
        (render_consent(&consent()), "csrf-consent-789", "Ana O'Neil"),
        (render_patient_picker(&picker()), "csrf-picker-1", "Dr. Lee"),
        (render_launcher(&launcher()), "csrf-launch-2", "Dr. Lee"),
        (render_connected_apps(&connected()), "csrf-apps-3", "Ana O'Neil"),
    ];
    for (html, csrf, user) in signed_in {
        let header = text_of(&html, "header");
        assert!(header.contains(&format!("Signed in as {user}")), "{header}");
        let sign_out = post_forms_to(&html, SIGN_OUT_ACTION);
        assert_eq!(sign_out.len(), 1);
        assert_eq!(sign_out[0].csrf_values(), [csrf]);
        assert_eq!(sign_out[0].buttons().len(), 1);
    }
    for html in [render_sign_in(&sign_in()), render_mfa(&mfa()), render_error(&error_page())] {
        assert!(post_forms_to(&html, SIGN_OUT_ACTION).is_empty());
        assert!(!text_of(&html, "header").contains("Signed in"));
    }
}

#[test]
fn sign_in_posts_credentials_with_csrf_and_request_parameters() {
    let html = render_sign_in(&sign_in());
    assert_eq!(text_of(&html, "h1"), "Sign in to continue to Growth Chart");
    assert_eq!(text_of(&html, "title"), "Sign in · Kiln");
    let form = post_forms_to(&html, "/auth/authorize/sign-in");
    assert_eq!(form.len(), 1);
    let form = &form[0];
    let mut expected = vec![("csrf".to_owned(), "csrf-sign-in-123".to_owned())];
    expected.extend(authz_hidden());
    assert_eq!(form.hidden(), expected);
    assert!(form.inner.iter().any(|t| t.is(
        "input",
        &[("id", "username"), ("name", "username"), ("type", "text"), ("autocomplete", "username"), ("value", "")]
    )));
    assert!(form.inner.iter().any(|t| t.is(
        "input",
        &[("id", "password"), ("name", "password"), ("type", "password"), ("autocomplete", "current-password")]
    )));
    assert_eq!(form.buttons().len(), 1);
    assert!(form.html.contains(">Sign in</button>"));
    assert!(!html.contains("class=\"error\""));
    assert!(!html.contains("Sign in with"));
}

#[test]
fn sign_in_after_failure_refills_username_and_shows_error() {
    let page = SignInPage {
        username: "ana@example.org".into(),
        error: Some("Wrong username or password.".into()),
        ..sign_in()
    };
    let html = render_sign_in(&page);
    let all = tags(&html);
    let username = all.iter().find(|t| t.get("id") == Some("username")).unwrap();
    assert_eq!(username.get("value"), Some("ana@example.org"));
    assert_eq!(username.get("aria-describedby"), Some("sign-in-error"));
    let password = all.iter().find(|t| t.get("id") == Some("password")).unwrap();
    assert!(!password.has("value"), "a password is never echoed back");
    assert!(all.iter().any(|t| t.is("p", &[("id", "sign-in-error"), ("role", "alert")])));
    assert!(html.contains("Wrong username or password."));
}

#[test]
fn sign_in_offers_identity_provider_link_when_configured() {
    let page = SignInPage {
        identity_provider: Some(IdpLink {
            name: "Riverside Clinic".into(),
            url: "https://sso.riverside.example/authorize?client=kiln&a=b".into(),
        }),
        ..sign_in()
    };
    let html = render_sign_in(&page);
    let links: Vec<Tag> = tags(&html).into_iter().filter(|t| t.name == "a").collect();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].get("href"), Some("https://sso.riverside.example/authorize?client=kiln&a=b"));
    assert!(html.contains(">Sign in with Riverside Clinic</a>"));
}

#[test]
fn mfa_asks_for_a_six_digit_code() {
    let html = render_mfa(&MfaPage { error: Some("That code has expired.".into()), ..mfa() });
    assert!(text_of(&html, "main").contains("Signing in as Ana O'Neil"));
    let form = post_forms_to(&html, "/auth/authorize/mfa");
    assert_eq!(form.len(), 1);
    let form = &form[0];
    let mut expected = vec![("csrf".to_owned(), "csrf-mfa-456".to_owned())];
    expected.extend(authz_hidden());
    assert_eq!(form.hidden(), expected);
    let code = form.inner.iter().find(|t| t.get("name") == Some("code")).expect("code input");
    assert!(code.is(
        "input",
        &[("id", "code"), ("inputmode", "numeric"), ("autocomplete", "one-time-code"), ("pattern", "[0-9]{6}")]
    ));
    assert!(code.has("required"));
    assert_eq!(code.get("aria-describedby"), Some("code-hint code-error"));
    assert!(form.html.contains(">Verify</button>"));
    assert!(html.contains("That code has expired."));
}

#[test]
fn consent_for_a_patient_speaks_of_their_record_and_connected_apps() {
    let html = render_consent(&consent());
    assert_eq!(text_of(&html, "h1"), "Growth Chart wants to access your health record");
    assert_eq!(text_of(&html, "title"), "Allow Growth Chart? · Kiln");
    assert!(text_of(&html, "main").contains("revoke this app's access later under Connected apps"));
    assert!(html.contains("App website: https:&#x2f;&#x2f;growth.example"));
    assert!(!tags(&html).iter().any(|t| t.name == "a"), "the app's own URI is never a link");
}

#[test]
fn consent_for_a_clinician_speaks_of_patient_records_and_shows_the_patient() {
    let page = ConsentPage {
        patient_facing: false,
        user_display: "Dr. Lee".into(),
        patient_banner: Some(PatientBanner {
            name: "Jamie Smith".into(),
            birth_date: Some("2019-04-02".into()),
            mrn: Some("MRN-0001".into()),
        }),
        ..consent()
    };
    let html = render_consent(&page);
    assert_eq!(text_of(&html, "h1"), "Growth Chart wants to access patient records");
    assert!(!html.contains("name=\"encounter\""), "no visit to choose unless asked");
    let with_visits = ConsentPage {
        encounters: vec![EncounterRow { id: "e2".into(), label: "2024-03-01 ambulatory".into() }],
        ..page.clone()
    };
    let html = render_consent(&with_visits);
    assert!(html.contains("<select id=\"encounter\" name=\"encounter\">"), "{html}");
    assert!(html.contains("<option value=\"e2\">2024-03-01 ambulatory</option>"));
    assert!(html.contains("<label for=\"encounter\">"));
    assert!(!html.contains("Connected apps"));
    let banner = text_of(&html, "section");
    assert!(banner.contains("Jamie Smith") && banner.contains("2019-04-02") && banner.contains("MRN-0001"), "{banner}");
}

#[test]
fn consent_has_a_ticked_checkbox_per_scope_and_carries_required_ones_hidden() {
    let html = render_consent(&consent());
    let form = post_forms_to(&html, "/auth/authorize/consent");
    assert_eq!(form.len(), 1);
    let form = &form[0];
    assert!(form.html.contains("<fieldset>") && form.html.contains("<legend>"));
    let boxes: Vec<&Tag> = form.inner.iter().filter(|t| t.is("input", &[("type", "checkbox")])).collect();
    assert_eq!(boxes.len(), 3);
    assert!(boxes.iter().all(|b| b.has("checked")));
    // The required scope: shown disabled, submitted through a hidden input instead.
    assert!(boxes[0].has("disabled") && !boxes[0].has("name"));
    assert!(!boxes[1].has("disabled") && !boxes[2].has("disabled"));
    let submitted: Vec<(&str, &str)> =
        boxes[1..].iter().map(|b| (b.get("name").unwrap(), b.get("value").unwrap())).collect();
    assert_eq!(submitted, [("scope", "patient/Observation.rs"), ("scope", "patient/Condition.rs")]);
    let hidden = form.hidden();
    assert_eq!(hidden.iter().filter(|(n, _)| n == "scope").map(|(_, v)| v.as_str()).collect::<Vec<_>>(), ["openid"]);
    assert!(hidden.contains(&("csrf".into(), "csrf-consent-789".into())));
    assert!(consent_hidden().iter().all(|pair| hidden.contains(pair)));
    for (b, description, raw) in [
        (boxes[0], "Know who you are", "openid"),
        (boxes[1], "Read your measurements and lab results", "patient&#x2f;Observation.rs"),
    ] {
        let id = b.get("id").unwrap();
        let label_start = form.html.find(&format!("<label for=\"{id}\">")).unwrap();
        let label = &form.html[label_start..label_start + form.html[label_start..].find("</label>").unwrap()];
        assert!(label.contains(description) && label.contains(&format!("<code>{raw}</code>")), "{label}");
    }
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "must not reuse the form's own field names")]
fn consent_rejects_hidden_pairs_that_clash_with_its_fields() {
    render_consent(&ConsentPage { hidden: authz_hidden(), ..consent() });
}

#[test]
fn consent_submits_allow_or_deny_from_the_same_form() {
    let html = render_consent(&consent());
    let form = &post_forms_to(&html, "/auth/authorize/consent")[0];
    let decisions: Vec<(&str, &str)> =
        form.buttons().iter().map(|b| (b.get("name").unwrap(), b.get("value").unwrap())).collect();
    assert_eq!(decisions, [("decision", "allow"), ("decision", "deny")]);
    assert!(form.html.contains(">Allow</button>") && form.html.contains(">Deny</button>"));
}

#[test]
fn picker_searches_with_get_and_keeps_the_request_parameters() {
    let html = render_patient_picker(&picker());
    let search: Vec<Form> = forms(&html).into_iter().filter(|f| f.tag.get("method") == Some("get")).collect();
    assert_eq!(search.len(), 1);
    let search = &search[0];
    assert_eq!(search.tag.get("action"), Some("/auth/authorize/patient"));
    assert_eq!(search.hidden(), authz_hidden());
    let field = |name: &str| search.inner.iter().find(|t| t.get("name") == Some(name)).unwrap();
    assert_eq!(field("name").get("value"), Some("smith"));
    assert!(field("birthdate").is("input", &[("type", "date"), ("value", "2019-04-02")]));
    assert_eq!(field("mrn").get("value"), Some(""));
}

#[test]
fn picker_offers_a_choose_button_per_patient() {
    let html = render_patient_picker(&picker());
    let choose = post_forms_to(&html, "/auth/authorize/patient");
    assert_eq!(choose.len(), 2);
    for (form, id) in choose.iter().zip(["pat-1", "pat-2"]) {
        let mut expected = vec![("csrf".to_owned(), "csrf-picker-1".to_owned())];
        expected.extend(authz_hidden());
        assert_eq!(form.hidden(), expected);
        let buttons = form.buttons();
        assert_eq!(buttons.len(), 1);
        assert!(buttons[0].is("button", &[("name", "patient"), ("value", id)]));
        assert!(form.html.contains(">Choose<"));
    }
    let cards = text_of(&html, "ul");
    assert!(cards.contains("Jamie Smith Born 2019-04-02 Gender Female MRN MRN-0001"), "{cards}");
    assert!(!html.contains("No patients match"));
}

#[test]
fn picker_says_no_patients_match_only_after_a_search() {
    let empty = PatientPickerPage { results: vec![], ..picker() };
    assert!(render_patient_picker(&empty).contains("No patients match"));
    let fresh = PatientPickerPage { searched: false, name: String::new(), birth_date: String::new(), ..empty };
    let html = render_patient_picker(&fresh);
    assert!(!html.contains("No patients match"));
    assert!(!html.contains("Results"));
}

#[test]
fn launcher_lists_found_patients_as_links_to_select_them() {
    let page = LauncherPage {
        results: vec![row("pat-1", "Jamie Smith", "2019-04-02", "female", "M1"), row("a&b c", "Odd Id", "", "", "")],
        selected: None,
        ..launcher()
    };
    let html = render_launcher(&page);
    let search: Vec<Form> = forms(&html).into_iter().filter(|f| f.tag.get("method") == Some("get")).collect();
    assert_eq!(search.len(), 1);
    assert_eq!(search[0].tag.get("action"), Some("/ehr/launch"));
    let all = tags(&html);
    let hrefs: Vec<&str> = all.iter().filter(|t| t.name == "a").filter_map(|t| t.get("href")).collect();
    assert_eq!(hrefs, ["?patient=pat-1", "?patient=a%26b%20c"]);
    assert!(post_forms_to(&html, "/ehr/launch/start").is_empty(), "nothing to launch before a patient is chosen");
}

#[test]
fn launcher_launches_each_app_for_the_selected_patient_and_encounter() {
    let html = render_launcher(&launcher());
    let launch = post_forms_to(&html, "/ehr/launch/start");
    assert_eq!(launch.len(), 1);
    let form = &launch[0];
    assert_eq!(form.hidden(), [("csrf".into(), "csrf-launch-2".into()), ("patient".into(), "pat-1".into())]);
    assert!(form.inner.iter().any(|t| t.is("select", &[("id", "encounter"), ("name", "encounter")])));
    let options: Vec<&str> =
        form.inner.iter().filter(|t| t.name == "option").map(|t| t.get("value").unwrap()).collect();
    assert_eq!(options, ["", "enc-9", "enc-7"]);
    assert!(form.html.contains("<option value=\"\">No encounter</option>"));
    assert!(form.html.contains(">2024-03-01 ambulatory visit</option>"));
    let apps: Vec<(&str, &str)> =
        form.buttons().iter().map(|b| (b.get("name").unwrap(), b.get("value").unwrap())).collect();
    assert_eq!(apps, [("client_id", "growth-chart"), ("client_id", "med-rec")]);
    assert!(form.html.contains(">Launch Growth Chart</button>") && form.html.contains(">Launch Med Reconciliation<"));
    assert!(!html.contains("No apps are registered"));
}

#[test]
fn launcher_says_when_no_apps_are_registered() {
    let html = render_launcher(&LauncherPage { apps: vec![], ..launcher() });
    assert!(html.contains("No apps are registered"));
    assert!(post_forms_to(&html, "/ehr/launch/start").is_empty());
    assert!(text_of(&html, "section").contains("Jamie Smith"), "the chosen patient is still shown");
}

#[test]
fn launcher_says_no_patients_match_for_an_empty_search_only() {
    let searched = LauncherPage { results: vec![], selected: None, ..launcher() };
    assert!(render_launcher(&searched).contains("No patients match"));
    let fresh = LauncherPage { name: String::new(), ..searched };
    assert!(!render_launcher(&fresh).contains("No patients match"));
}

#[test]
fn connected_apps_lists_scopes_and_a_revoke_form_per_app() {
    let html = render_connected_apps(&connected());
    assert_eq!(text_of(&html, "h1"), "Connected apps");
    let revoke = post_forms_to(&html, "/account/apps/revoke");
    assert_eq!(revoke.len(), 2);
    for (form, client_id) in revoke.iter().zip(["growth-chart", "diary"]) {
        assert_eq!(form.hidden(), [("csrf".into(), "csrf-apps-3".into()), ("client_id".into(), client_id.into())]);
        assert_eq!(form.buttons().len(), 1);
        assert!(form.html.contains(">Revoke access<"));
    }
    let main = text_of(&html, "main");
    assert!(main.contains("Allowed on 2024-05-01 Know who you are Read your measurements and lab results"), "{main}");
    assert!(main.contains("Symptom Diary Allowed on 2024-06-12 Read and write your observations"), "{main}");
    assert!(!html.contains("class=\"notice\""));
}

#[test]
fn connected_apps_shows_notice_and_empty_state() {
    let page =
        ConnectedAppsPage { apps: vec![], notice: Some("Access for Growth Chart was revoked.".into()), ..connected() };
    let html = render_connected_apps(&page);
    assert!(html.contains("<p class=\"notice\" role=\"status\">Access for Growth Chart was revoked.</p>"));
    assert!(html.contains("You have not allowed any apps"));
    assert!(post_forms_to(&html, "/account/apps/revoke").is_empty());
}

#[test]
fn error_page_shows_the_message_with_no_way_back_to_the_app() {
    let html = render_error(&error_page());
    assert_eq!(text_of(&html, "title"), "This app cannot sign you in · Kiln");
    assert_eq!(text_of(&html, "h1"), "This app cannot sign you in");
    assert!(html.contains("https:&#x2f;&#x2f;evil.example&#x2f;cb is not registered"));
    let all = tags(&html);
    assert!(!all.iter().any(|t| t.name == "a" || t.name == "form" || t.has("href")));
}

#[test]
fn info_page_shows_title_and_message() {
    let html = render_info(&info_page());
    assert_eq!(text_of(&html, "title"), "Signed out · Kiln");
    assert_eq!(text_of(&html, "h1"), "Signed out");
    assert!(html.contains("<p>You have signed out of Kiln.</p>"));
}

#[test]
fn hostile_strings_are_escaped_everywhere() {
    const XSS: &str = "<script>alert(1)</script>";
    const BREAKOUT: &str = "x\" autofocus onfocus=\"alert(1)";
    let mut sign_in_page = sign_in();
    sign_in_page.app_name = Some(XSS.into());
    sign_in_page.username = BREAKOUT.into();
    sign_in_page.hidden.push(("state".into(), BREAKOUT.into()));
    sign_in_page.hidden.push((BREAKOUT.into(), "v".into()));
    let consent_page = ConsentPage {
        app_name: XSS.into(),
        app_uri: Some("javascript:alert(1)".into()),
        scopes: vec![ScopeChoice { value: BREAKOUT.into(), description: XSS.into(), required: true }],
        hidden: vec![("state".into(), BREAKOUT.into())],
        ..consent()
    };
    let pages = [
        render_sign_in(&sign_in_page),
        render_consent(&consent_page),
        render_patient_picker(&PatientPickerPage {
            name: BREAKOUT.into(),
            results: vec![row(BREAKOUT, XSS, "", "", "")],
            ..picker()
        }),
        render_connected_apps(&ConnectedAppsPage {
            user_display: XSS.into(),
            notice: Some(XSS.into()),
            apps: vec![ConnectedApp {
                client_id: BREAKOUT.into(),
                name: XSS.into(),
                granted: XSS.into(),
                scopes: vec![],
            }],
            ..connected()
        }),
        render_error(&ErrorPage { title: XSS.into(), message: XSS.into() }),
    ];
    for html in &pages {
        assert!(!html.contains("<script"), "unescaped markup");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"), "escaped text missing");
        assert!(!tags(html).iter().any(|t| t.has("onfocus") || t.has("autofocus")), "attribute breakout");
    }
    // Escaped values still reach the server exactly as given.
    let sign_in_forms = post_forms_to(&pages[0], "/auth/authorize/sign-in");
    let hidden = sign_in_forms[0].hidden();
    assert!(hidden.contains(&("state".into(), BREAKOUT.into())) && hidden.contains(&(BREAKOUT.into(), "v".into())));
    assert!(pages[0].contains("value=\"x&quot; autofocus onfocus=&quot;alert(1)\""));
    assert_eq!(text_of(&pages[1], "h1"), format!("{XSS} wants to access your health record"));
    assert!(!tags(&pages[1]).iter().any(|t| t.name == "a"), "the app URI is shown as text, never as a link");
    let consent_hidden = post_forms_to(&pages[1], "/auth/authorize/consent")[0].hidden();
    assert!(consent_hidden.contains(&("scope".into(), BREAKOUT.into())));
    let choose = post_forms_to(&pages[2], "/auth/authorize/patient");
    assert_eq!(choose[0].buttons()[0].get("value"), Some(BREAKOUT));
    let revoke = post_forms_to(&pages[3], "/account/apps/revoke");
    assert!(revoke[0].hidden().contains(&("client_id".into(), BREAKOUT.into())));
}
