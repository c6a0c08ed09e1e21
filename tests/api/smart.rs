//! SMART on FHIR authorization: discovery, the authorization code flow with PKCE through the
//! sign-in and consent pages, refresh rotation, backend services with a signed assertion, and
//! the refusals (missing, forged and revoked tokens, wrong aud, reused codes, bad verifiers,
//! replayed assertions, scope escalation, patient compartment and tenant boundaries).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::redirect::Policy;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;

use crate::helpers::{TestApp, assertion, authorized_client, backend_client, es384_key, register_app};
use kiln::auth::accounts::{ClientKind, NewUser, create_user};

pub const REDIRECT: &str = "http://app.example/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()))
}

fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The `name`/`value` pairs of a page's hidden inputs and ticked checkboxes.
pub fn form_fields(html: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    for input in html.split("<input").skip(1) {
        let tag = &input[..input.find('>').unwrap_or(input.len())];
        let attribute = |name: &str| {
            let marker = format!("{name}=\"");
            tag.find(&marker).map(|at| {
                let rest = &tag[at + marker.len()..];
                unescape(&rest[..rest.find('"').unwrap_or(rest.len())])
            })
        };
        let kind = attribute("type").unwrap_or_default();
        if (kind == "hidden" || kind == "checkbox")
            && let (Some(name), Some(value)) = (attribute("name"), attribute("value"))
        {
            fields.push((name, value));
        }
    }
    fields
}

/// A browser: keeps cookies per origin (as if each server had its own host name), follows no
/// redirects (the test follows them); a path without an origin goes to the last origin visited.
pub struct Browser {
    client: Client,
    cookies: HashMap<String, HashMap<String, String>>,
    origin: String,
}

fn origin_of(url: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |at| at + 3);
    match url[after_scheme..].find('/') {
        Some(slash) => url[..after_scheme + slash].to_string(),
        None => url.to_string(),
    }
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        let client = Client::builder().redirect(Policy::none()).build().unwrap();
        Browser { client, cookies: HashMap::new(), origin: app.root.clone() }
    }

    fn absorb(&mut self, origin: &str, response: &reqwest::Response) {
        let jar = self.cookies.entry(origin.to_string()).or_default();
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            jar.insert(name.to_string(), value.to_string());
        }
    }

    fn cookie_header(&self, origin: &str) -> String {
        let Some(jar) = self.cookies.get(origin) else { return String::new() };
        jar.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn url(&mut self, path: &str) -> String {
        if path.starts_with("http") {
            self.origin = origin_of(path);
            path.to_string()
        } else {
            format!("{}{path}", self.origin)
        }
    }

    pub async fn get(&mut self, path: &str) -> reqwest::Response {
        let url = self.url(path);
        let origin = self.origin.clone();
        let response = self.client.get(url).header("cookie", self.cookie_header(&origin)).send().await.unwrap();
        self.absorb(&origin, &response);
        response
    }

    pub async fn post(&mut self, path: &str, form: &[(String, String)]) -> reqwest::Response {
        let url = self.url(path);
        let origin = self.origin.clone();
        let response =
            self.client.post(url).header("cookie", self.cookie_header(&origin)).form(form).send().await.unwrap();
        self.absorb(&origin, &response);
        response
    }
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers().get("location").expect("a redirect").to_str().unwrap().to_string()
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    form_urlencoded::parse(query.as_bytes()).into_owned().collect()
}

pub fn authorize_url(_app: &TestApp, client_id: &str, scope: &str, aud: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "st-123")
        .append_pair("aud", aud)
        .append_pair("code_challenge", &challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    format!("/auth/authorize?{query}")
}

/// Opens `authorize` (or any page that asks to sign in) and submits the sign-in form.
pub async fn submit_sign_in(
    browser: &mut Browser,
    authorize: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser.get(authorize).await.text().await.unwrap();
    let mut form = form_fields(&page);
    form.push(("username".into(), username.into()));
    form.push(("password".into(), password.into()));
    browser.post("/auth/login", &form).await
}

/// Signs in through the sign-in page and allows everything on the consent page; answers the
/// redirect back to the app.
pub async fn sign_in_and_allow(browser: &mut Browser, authorize: &str, username: &str) -> String {
    let page = browser.get(authorize).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("name=\"password\""), "a sign-in page: {html}");
    let mut form = form_fields(&html);
    form.push(("username".into(), username.into()));
    form.push(("password".into(), "correct horse battery".into()));
    let signed_in = browser.post("/auth/login", &form).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER, "sign-in redirects back");
    let consent = browser.get(&location(&signed_in)).await;
    let html = consent.text().await.unwrap();
    assert!(html.contains("value=\"allow\""), "a consent page: {html}");
    let mut form = form_fields(&html);
    form.push(("decision".into(), "allow".into()));
    let decided = browser.post("/auth/consent", &form).await;
    assert_eq!(decided.status(), StatusCode::SEE_OTHER);
    location(&decided)
}

async fn token_request(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    Client::new().post(format!("{}/auth/token", app.root)).form(form).send().await.unwrap()
}

pub async fn patient_user(app: &TestApp, username: &str, patient: &str) {
    create_user(
        &app.state.store,
        NewUser {
            tenant: "test-clinic".into(),
            username: username.into(),
            password: "correct horse battery".into(),
            role: "patient".into(),
            fhir_user: Some(format!("Patient/{patient}")),
            display_name: Some("Pat Example".into()),
            external_subject: None,
        },
    )
    .await
    .unwrap();
}

/// Two patients, each with an Observation; answers their ids.
async fn two_patients(app: &TestApp) -> (String, String, String, String) {
    let a = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Alpha"}]})).await;
    let b = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Beta"}]})).await;
    let observation = |p: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "weight"},
               "subject": {"reference": format!("Patient/{p}")}})
    };
    let oa = app.create(&observation(&a)).await;
    let ob = app.create(&observation(&b)).await;
    (a, b, oa, ob)
}

async fn missing_and_bad_tokens_are_refused(app: TestApp) {
    let anonymous = app.anonymous.get(app.url("Patient")).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.headers()["www-authenticate"], r#"Bearer realm="kiln""#);
    let outcome: Value = anonymous.json().await.unwrap();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    // Discovery and the CapabilityStatement need no token.
    for path in ["metadata", ".well-known/smart-configuration"] {
        assert_eq!(app.anonymous.get(app.url(path)).send().await.unwrap().status(), StatusCode::OK, "{path}");
    }
    // A tampered payload, a garbage token, a token signed by a key of our own making.
    let parts: Vec<&str> = app.token.split('.').collect();
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["tenant"] = json!("other-clinic");
    let tampered = format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(claims.to_string()), parts[2]);
    let forger = kiln::auth::signing::SigningKey::generate_rs256(claims_kid(&app.token).as_str()).unwrap();
    let forged = kiln::auth::signing::KeyRing::new(forger, vec![]).unwrap().sign(&claims).unwrap();
    for token in [tampered.as_str(), "not.a.token", forged.as_str()] {
        let response = authorized_client(token).get(app.url("Patient")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{token}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    }
    // The server keeps serving the real token.
    assert_eq!(app.get("Patient").await.status(), StatusCode::OK);
}

fn claims_kid(token: &str) -> String {
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_string()
}

async fn discovery_names_the_endpoints_and_keys(app: TestApp) {
    let config: Value =
        app.anonymous.get(app.url(".well-known/smart-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["issuer"], app.base);
    assert_eq!(config["token_endpoint"], format!("{}/auth/token", app.root));
    assert_eq!(config["code_challenge_methods_supported"], json!(["S256"]));
    for capability in ["launch-ehr", "launch-standalone", "client-confidential-asymmetric", "permission-v2"] {
        assert!(config["capabilities"].as_array().unwrap().contains(&json!(capability)), "{capability}");
    }
    let jwks: Value =
        app.anonymous.get(config["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    let kid = claims_kid(&app.token);
    assert!(jwks["keys"].as_array().unwrap().iter().any(|k| k["kid"] == kid.as_str() && k.get("d").is_none()));
    let openid: Value =
        app.anonymous.get(app.url(".well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(openid["issuer"], app.base);
}

async fn a_patient_app_sees_only_its_patient(app: TestApp) {
    let (a, b, oa, ob) = two_patients(&app).await;
    // A resource of a's record that refers outside any patient's compartment.
    let doctor = app.create(&json!({"resourceType": "Practitioner", "name": [{"family": "Carer"}]})).await;
    let seen_by = app
        .create(&json!({"resourceType": "Observation", "status": "final", "code": {"text": "pulse"},
            "subject": {"reference": format!("Patient/{a}")}, "performer": [{"reference": format!("Practitioner/{doctor}")}]}))
        .await;
    patient_user(&app, "pat", &a).await;
    let scope = "launch/patient openid fhirUser offline_access patient/*.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let mut browser = Browser::new(&app);
    let back = sign_in_and_allow(&mut browser, &authorize_url(&app, &client_id, scope, &app.base), "pat").await;
    assert!(back.starts_with(REDIRECT));
    let params = query_of(&back);
    assert_eq!(params["state"], "st-123");
    let code = params["code"].clone();

    // A wrong verifier fails, and so does the code afterwards: it is single-use.
    let response = token_request(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", "x".repeat(43).as_str()),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");

    // A fresh code, exchanged properly.
    let back = sign_in_again(&mut browser, &authorize_url(&app, &client_id, scope, &app.base)).await;
    let code = query_of(&back)["code"].clone();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let response = token_request(&app, &exchange).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["patient"], a.as_str());
    assert_eq!(token["token_type"], "Bearer");
    assert!(token["id_token"].is_string() && token["refresh_token"].is_string(), "{token}");
    let id_claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(token["id_token"].as_str().unwrap().split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    assert_eq!(id_claims["fhirUser"], format!("{}/Patient/{a}", app.base));
    assert_eq!(id_claims["aud"], client_id.as_str());

    let patient_app = authorized_client(token["access_token"].as_str().unwrap());
    let get = |path: String| {
        let client = patient_app.clone();
        let url = app.url(&path);
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(get(format!("Patient/{a}")).await.status(), StatusCode::OK);
    assert_eq!(get(format!("Patient/{b}")).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(format!("Observation/{ob}")).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(format!("Observation/{ob}/_history")).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(format!("Patient/{b}/$everything")).await.status(), StatusCode::FORBIDDEN);
    let ids = |bundle: Value| -> Vec<String> {
        bundle["entry"]
            .as_array()
            .map(|e| e.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let mut searched = ids(get("Observation".into()).await.json().await.unwrap());
    searched.sort();
    let mut expected = vec![oa.clone(), seen_by.clone()];
    expected.sort();
    assert_eq!(searched, expected);
    let included = ids(get("Observation?_include=Observation:subject".into()).await.json().await.unwrap());
    assert!(included.contains(&a) && !included.contains(&b), "{included:?}");
    let revincluded =
        ids(get(format!("Patient?_id={a},{b}&_revinclude=Observation:subject")).await.json().await.unwrap());
    assert!(revincluded.contains(&oa) && !revincluded.contains(&ob) && !revincluded.contains(&b), "{revincluded:?}");
    // _has and chains would test resources the token cannot see: refused.
    assert_eq!(get("Patient?_has:Observation:subject:status=final".into()).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(get("Observation?subject:Patient.family=Beta".into()).await.status(), StatusCode::FORBIDDEN);
    // $meta and $validate are checked like the interactions they stand for.
    assert_eq!(get(format!("Observation/{ob}/$meta")).await.status(), StatusCode::FORBIDDEN);
    assert_eq!(get("$meta".into()).await.status(), StatusCode::FORBIDDEN);
    let meta_delete = patient_app
        .post(app.url(&format!("Observation/{ob}/$meta-delete")))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Parameters", "parameter": [{"name": "meta", "valueMeta": {"tag": [{"code": "x"}]}}]}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(meta_delete.status(), StatusCode::FORBIDDEN);
    let everything = ids(get(format!("Patient/{a}/$everything")).await.json().await.unwrap());
    assert!(everything.contains(&oa) && everything.contains(&seen_by) && !everything.contains(&ob));
    assert!(everything.contains(&doctor), "the practitioner of the record is not anyone's record: {everything:?}");
    let performers = ids(get("Observation?_include=Observation:performer".into()).await.json().await.unwrap());
    assert!(performers.contains(&doctor) && performers.contains(&seen_by), "{performers:?}");
    // Writes: its own record only, and nothing outside its scopes (rs = read and search).
    let write = patient_app
        .post(app.url("Observation"))
        .header("content-type", "application/fhir+json")
        .body(json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": format!("Patient/{a}")}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), StatusCode::FORBIDDEN);

    // The code cannot be used twice; the second use revokes what the first issued.
    let again = token_request(&app, &exchange).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(get(format!("Patient/{a}")).await.status(), StatusCode::UNAUTHORIZED);
}

/// With a live session, authorize goes straight to the consent page.
async fn sign_in_again(browser: &mut Browser, authorize: &str) -> String {
    let consent = browser.get(authorize).await;
    let html = consent.text().await.unwrap();
    let mut form = form_fields(&html);
    form.push(("decision".into(), "allow".into()));
    let decided = browser.post("/auth/consent", &form).await;
    assert_eq!(decided.status(), StatusCode::SEE_OTHER);
    location(&decided)
}

async fn authorize_refuses_bad_requests(app: TestApp) {
    let (a, ..) = two_patients(&app).await;
    patient_user(&app, "pat", &a).await;
    let scope = "launch/patient patient/*.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let plain = Client::builder().redirect(Policy::none()).build().unwrap();
    // An unregistered redirect URI is never redirected to.
    let url = authorize_url(&app, &client_id, scope, &app.base).replace("callback", "evil");
    let response = plain.get(format!("{}{url}", app.root)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());
    // A wrong aud goes back to the app as an error.
    let url = authorize_url(&app, &client_id, scope, "http://other.example/fhir");
    let response = plain.get(format!("{}{url}", app.root)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let back = query_of(&location(&response));
    assert_eq!(back["error"], "invalid_request");
    assert_eq!(back["state"], "st-123");
    // PKCE is required.
    let url = authorize_url(&app, &client_id, scope, &app.base)
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let response = plain.get(format!("{}{url}", app.root)).send().await.unwrap();
    assert_eq!(query_of(&location(&response))["error"], "invalid_request");
    // A consent form without the session's CSRF token is refused.
    let mut browser = Browser::new(&app);
    let signed_in = submit_sign_in(
        &mut browser,
        &authorize_url(&app, &client_id, scope, &app.base),
        "pat",
        "correct horse battery",
    )
    .await;
    let consent = browser.get(&location(&signed_in)).await.text().await.unwrap();
    let mut forged: Vec<(String, String)> = form_fields(&consent).into_iter().filter(|(n, _)| n != "csrf").collect();
    forged.push(("csrf".into(), "guessed".into()));
    forged.push(("decision".into(), "allow".into()));
    assert_eq!(browser.post("/auth/consent", &forged).await.status(), StatusCode::FORBIDDEN);
    // A wrong password is answered on the sign-in page, without saying which part was wrong.
    let mut stranger = Browser::new(&app);
    let refused =
        submit_sign_in(&mut stranger, &authorize_url(&app, &client_id, scope, &app.base), "pat", "wrong password!")
            .await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.text().await.unwrap().contains("user name or password is wrong"));
}

async fn refresh_tokens_rotate_and_reuse_revokes(app: TestApp) {
    let (a, ..) = two_patients(&app).await;
    patient_user(&app, "pat", &a).await;
    let scope = "launch/patient offline_access patient/Patient.rs patient/Observation.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let mut browser = Browser::new(&app);
    let back = sign_in_and_allow(&mut browser, &authorize_url(&app, &client_id, scope, &app.base), "pat").await;
    let token = exchange_code(&app, &back, &client_id).await;
    let first = token["refresh_token"].as_str().unwrap().to_string();
    // Escalation is refused.
    let escalate = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("client_id", &client_id),
            ("scope", "patient/Observation.cruds"),
        ],
    )
    .await;
    assert_eq!(escalate.status(), StatusCode::BAD_REQUEST);
    assert_eq!(escalate.json::<Value>().await.unwrap()["error"], "invalid_scope");
    // The refusal used the token up (it was redeemed); the rotation chain starts from a new grant.
    let back = sign_in_again(&mut browser, &authorize_url(&app, &client_id, scope, &app.base)).await;
    let token = exchange_code(&app, &back, &client_id).await;
    let first = token["refresh_token"].as_str().unwrap().to_string();
    let rotated: Value = token_request(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("client_id", &client_id),
            ("scope", "offline_access patient/Patient.rs"),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    let rotated_once = rotated["refresh_token"].as_str().expect("a new refresh token").to_string();
    // A public client may refresh without naming itself: the refresh token says whose it is.
    let anonymous = token_request(&app, &[("grant_type", "refresh_token"), ("refresh_token", &rotated_once)]).await;
    assert_eq!(anonymous.status(), StatusCode::OK);
    let rotated: Value = anonymous.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().expect("a new refresh token").to_string();
    assert_ne!(first, second);
    assert_eq!(rotated["scope"], "offline_access patient/Patient.rs", "a refresh may narrow");
    let narrowed = authorized_client(rotated["access_token"].as_str().unwrap());
    assert_eq!(narrowed.get(app.url(&format!("Patient/{a}"))).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(narrowed.get(app.url("Observation")).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // Presenting the rotated-out token again revokes the family: the newest token dies too.
    let reuse =
        token_request(&app, &[("grant_type", "refresh_token"), ("refresh_token", &first), ("client_id", &client_id)])
            .await;
    assert_eq!(reuse.status(), StatusCode::BAD_REQUEST);
    let after =
        token_request(&app, &[("grant_type", "refresh_token"), ("refresh_token", &second), ("client_id", &client_id)])
            .await;
    assert_eq!(after.status(), StatusCode::BAD_REQUEST);
    assert_eq!(narrowed.get(app.url(&format!("Patient/{a}"))).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

async fn backend_services_sign_their_own_assertion(app: TestApp) {
    let (key, jwks) = es384_key();
    let registered = kiln::auth::accounts::register_client(
        &app.state.store,
        kiln::auth::accounts::NewClient {
            tenant: "test-clinic".into(),
            name: "Backend".into(),
            kind: ClientKind::ConfidentialAsymmetric,
            redirect_uris: vec![],
            scopes: "system/Patient.rs".into(),
            launch_url: None,
            jwks: Some(jwks.to_string()),
            jwks_uri: None,
            status: "active".into(),
        },
    )
    .await
    .unwrap();
    let client_id = registered.client.client_id;
    let token_url = format!("{}/auth/token", app.root);
    let ask = |assertion: String, scope: &'static str| {
        let token_url = token_url.clone();
        async move {
            Client::new()
                .post(token_url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", scope),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let good = assertion(&key, &client_id, &token_url, "jti-1", 120);
    let response = ask(good.clone(), "system/Patient.rs system/Observation.rs").await;
    assert_eq!(response.status(), StatusCode::OK);
    let token: Value = response.json().await.unwrap();
    assert_eq!(token["scope"], "system/Patient.rs", "only what the registration allows");
    let backend = authorized_client(token["access_token"].as_str().unwrap());
    assert_eq!(backend.get(app.url("Patient")).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(backend.get(app.url("Observation")).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    // Replayed, wrong audience, too long-lived, expired, signed by another key.
    let (stranger, _) = es384_key();
    for (bad, why) in [
        (good, "replayed jti"),
        (assertion(&key, &client_id, "http://elsewhere/token", "jti-2", 120), "wrong aud"),
        (assertion(&key, &client_id, &token_url, "jti-3", 3600), "exp too far ahead"),
        (assertion(&key, &client_id, &token_url, "jti-4", -60), "expired"),
        (assertion(&stranger, &client_id, &token_url, "jti-5", 120), "forged"),
    ] {
        let response = ask(bad, "system/Patient.rs").await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(response.json::<Value>().await.unwrap()["error"], "invalid_client", "{why}");
    }
    // Introspection by a confidential client, and revocation.
    let access = token["access_token"].as_str().unwrap().to_string();
    let introspect = |assertion: String, token: String| {
        let url = format!("{}/auth/introspect", app.root);
        async move {
            Client::new()
                .post(url)
                .form(&[
                    ("token", token.as_str()),
                    ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                    ("client_assertion", assertion.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let active = introspect(assertion(&key, &client_id, &token_url, "jti-6", 120), access.clone()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["scope"], "system/Patient.rs");
    let revoked = Client::new()
        .post(format!("{}/auth/revoke", app.root))
        .form(&[
            ("token", access.as_str()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion(&key, &client_id, &token_url, "jti-7", 120).as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(backend.get(app.url("Patient")).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let inactive = introspect(assertion(&key, &client_id, &token_url, "jti-8", 120), access).await;
    assert_eq!(inactive, json!({"active": false}));
}

async fn tenants_do_not_see_each_other(app: TestApp) {
    let id = app.create(&json!({"resourceType": "Patient", "name": [{"family": "Local"}]})).await;
    app.state.store.ensure_tenant(&kiln::access::TenantId::parse("other-clinic").unwrap(), "Other").await.unwrap();
    let token = crate::helpers::system_token_in(&app.state, &app.root, "other-clinic").await;
    let other = authorized_client(&token);
    assert_eq!(other.get(app.url(&format!("Patient/{id}"))).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let bundle: Value = other.get(app.url("Patient")).send().await.unwrap().json().await.unwrap();
    assert_eq!(bundle["total"], 0);
}

async fn a_rotated_key_keeps_verifying_on_every_node(app: TestApp) {
    let before = app.token.clone();
    let second = app.another_process_on_same_database().await;
    kiln::auth::keys::rotate(&app.state.store, &app.state.sensitive).await.unwrap();
    app.state.auth.reload_keys(&app.state.store).await.unwrap();
    // A token signed with the new key by this node is accepted by the other process, and the
    // token signed before the rotation still works on both.
    let fresh = crate::helpers::system_token(&app.state, &app.root).await;
    assert_ne!(claims_kid(&fresh), claims_kid(&before));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    for token in [&before, &fresh] {
        let client = authorized_client(token);
        assert_eq!(client.get(app.url("Patient")).send().await.unwrap().status(), StatusCode::OK);
        assert_eq!(client.get(second.url("Patient")).send().await.unwrap().status(), StatusCode::OK);
    }
}

pub async fn staff_user(app: &TestApp, username: &str, role: &str) {
    let practitioner = app.create(&json!({"resourceType": "Practitioner", "name": [{"family": username}]})).await;
    create_user(
        &app.state.store,
        NewUser {
            tenant: "test-clinic".into(),
            username: username.into(),
            password: "correct horse battery".into(),
            role: role.into(),
            fhir_user: Some(format!("Practitioner/{practitioner}")),
            display_name: None,
            external_subject: None,
        },
    )
    .await
    .unwrap();
}

/// A signed-in staff member's API client (a new account with `role`, its own Practitioner, an
/// app granted `scope`) and the account's Practitioner reference.
pub async fn staff_client(app: &TestApp, username: &str, role: &str, scope: &str) -> (Client, String) {
    staff_user(app, username, role).await;
    let practitioner = app.state.store.user_by_name(username).await.unwrap().unwrap().fhir_user.unwrap();
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let mut browser = Browser::new(app);
    let back = sign_in_and_allow(&mut browser, &authorize_url(app, &client_id, scope, &app.base), username).await;
    let token = exchange_code(app, &back, &client_id).await;
    (authorized_client(token["access_token"].as_str().unwrap()), practitioner)
}

pub async fn exchange_code(app: &TestApp, back: &str, client_id: &str) -> Value {
    let code = query_of(back)["code"].clone();
    let response = token_request(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn clinicians_pick_a_patient_and_roles_bound_user_tokens(app: TestApp) {
    let (a, b, oa, _) = two_patients(&app).await;
    staff_user(&app, "nurse", "nurse").await;
    // The nurse cares for Alpha (nurses reach only the patients in their care).
    let nurse_practitioner = app.state.store.user_by_name("nurse").await.unwrap().unwrap().fhir_user.unwrap();
    app.create(&json!({"resourceType": "CareTeam", "subject": {"reference": format!("Patient/{a}")},
        "participant": [{"member": {"reference": nurse_practitioner}}]}))
        .await;
    staff_user(&app, "frontdesk", "receptionist").await;
    let scope = "launch/patient openid fhirUser user/*.cruds";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;

    // A nurse's standalone launch: sign in, pick the patient, consent.
    let mut browser = Browser::new(&app);
    let authorize = authorize_url(&app, &client_id, scope, &app.base);
    let signed_in = submit_sign_in(&mut browser, &authorize, "nurse", "correct horse battery").await;
    let picker = browser.get(&location(&signed_in)).await.text().await.unwrap();
    assert!(picker.contains("name=\"birthdate\""), "a patient picker: {picker}");
    let mut search: Vec<(String, String)> =
        form_fields(&picker).into_iter().filter(|(n, _)| n != "csrf" && n != "patient").collect();
    search.push(("name".into(), "Alpha".into()));
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(&search).finish();
    let results = browser.get(&format!("/auth/authorize?{query}")).await.text().await.unwrap();
    assert!(results.contains(&format!("value=\"{a}\"")), "the search finds Alpha: {results}");
    let mut choose: Vec<(String, String)> = form_fields(&results)
        .into_iter()
        .filter(|(n, _)| !matches!(n.as_str(), "patient" | "name" | "birthdate" | "mrn"))
        .collect();
    choose.dedup();
    // Beta is not in the nurse's care: the picker does not find her, and choosing her anyway
    // (a hand-made form) is refused.
    let beta_search = search.iter().map(|(n, v)| (n.clone(), if n == "name" { "Beta".into() } else { v.clone() }));
    let query = form_urlencoded::Serializer::new(String::new()).extend_pairs(beta_search).finish();
    let results = browser.get(&format!("/auth/authorize?{query}")).await.text().await.unwrap();
    assert!(!results.contains(&b) && results.contains("name=\"birthdate\""), "Beta is not offered: {results}");
    let mut stranger = choose.clone();
    stranger.push(("patient".into(), b.clone()));
    let consent = browser.post("/auth/authorize", &stranger).await.text().await.unwrap();
    let mut form = form_fields(&consent);
    form.push(("decision".into(), "allow".into()));
    let refused = location(&browser.post("/auth/consent", &form).await);
    assert_eq!(query_of(&refused)["error"], "invalid_request", "{refused}");
    choose.push(("patient".into(), a.clone()));
    let consent = browser.post("/auth/authorize", &choose).await.text().await.unwrap();
    assert!(consent.contains("value=\"allow\""), "{consent}");
    let mut form = form_fields(&consent);
    form.push(("decision".into(), "allow".into()));
    let back = location(&browser.post("/auth/consent", &form).await);
    let token = exchange_code(&app, &back, &client_id).await;
    assert_eq!(token["patient"], a.as_str(), "the picked patient is the launch context");
    assert_eq!(token["need_patient_banner"], true);

    // The nurse's user/*.cruds token: charting yes, prescribing no (the role says so).
    let nurse = authorized_client(token["access_token"].as_str().unwrap());
    assert_eq!(nurse.get(app.url(&format!("Observation/{oa}"))).send().await.unwrap().status(), StatusCode::OK);
    let prescription = json!({"resourceType": "MedicationRequest", "status": "active", "intent": "order",
        "medicationCodeableConcept": {"text": "amoxicillin"}, "subject": {"reference": format!("Patient/{a}")}});
    let refused = nurse
        .post(app.url("MedicationRequest"))
        .header("content-type", "application/fhir+json")
        .body(prescription.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let outcome: Value = refused.json().await.unwrap();
    assert!(outcome["issue"][0]["diagnostics"].as_str().unwrap().contains("role 'nurse'"), "{outcome}");

    // The receptionist's token with the same scopes cannot open the clinical record.
    let mut front = Browser::new(&app);
    let scope = "openid user/*.cruds";
    let back = sign_in_and_allow(&mut front, &authorize_url(&app, &client_id, scope, &app.base), "frontdesk").await;
    let token = exchange_code(&app, &back, &client_id).await;
    let receptionist = authorized_client(token["access_token"].as_str().unwrap());
    assert_eq!(receptionist.get(app.url(&format!("Patient/{a}"))).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        receptionist.get(app.url(&format!("Observation/{oa}"))).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(receptionist.get(app.url("Observation")).send().await.unwrap().status(), StatusCode::FORBIDDEN);
}

async fn browser_apps_may_call_the_api_from_another_origin(app: TestApp) {
    let origin = "http://app.example";
    let preflight = Client::new()
        .request(reqwest::Method::OPTIONS, app.url("Patient/x"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
    let read = app.client.get(app.url("metadata")).header("origin", origin).send().await.unwrap();
    assert_eq!(read.headers()["access-control-allow-origin"], "*");
    let token = Client::new()
        .post(format!("{}/auth/token", app.root))
        .header("origin", origin)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(token.headers()["access-control-allow-origin"], "*");
    assert!(token.headers().get("www-authenticate").is_none(), "no Basic challenge when Basic was not used");
    // The pages people sign in on are not open to other origins.
    let page = Client::new().get(format!("{}/auth/login", app.root)).header("origin", origin).send().await.unwrap();
    assert!(page.headers().get("access-control-allow-origin").is_none());
}

async fn administrators_manage_accounts_and_apps_over_http(app: TestApp) {
    staff_user(&app, "boss", "admin").await;
    staff_user(&app, "nurse", "nurse").await;
    let scope = "openid user/*.rs kiln/admin";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let token_of = |username: &'static str| {
        let app = &app;
        let client_id = client_id.clone();
        async move {
            let mut browser = Browser::new(app);
            let back =
                sign_in_and_allow(&mut browser, &authorize_url(app, &client_id, scope, &app.base), username).await;
            exchange_code(app, &back, &client_id).await["access_token"].as_str().unwrap().to_string()
        }
    };
    let admin = authorized_client(&token_of("boss").await);
    // An administrator's token from an app not registered for administration is not enough.
    let (plain_app, _) = register_app(&app.state, ClientKind::Public, "openid user/*.rs", vec![REDIRECT.into()]).await;
    let mut browser = Browser::new(&app);
    let back =
        sign_in_and_allow(&mut browser, &authorize_url(&app, &plain_app, "openid user/*.rs", &app.base), "boss").await;
    let plain = authorized_client(exchange_code(&app, &back, &plain_app).await["access_token"].as_str().unwrap());
    let denied = plain.get(format!("{}/auth/admin/users", app.root)).send().await.unwrap();
    assert_eq!(denied.status(), StatusCode::FORBIDDEN);
    let nurse = authorized_client(&token_of("nurse").await);
    let users = format!("{}/auth/admin/users", app.root);
    let practitioner = app.create(&json!({"resourceType": "Practitioner", "name": [{"family": "New"}]})).await;
    let account = json!({"username": "newdoc", "password": "a long enough secret", "role": "physician",
        "fhirUser": format!("Practitioner/{practitioner}")});
    assert_eq!(Client::new().post(&users).json(&account).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(nurse.post(&users).json(&account).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let created = admin.post(&users).json(&account).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let weak = json!({"username": "weak", "password": "short", "role": "nurse"});
    let refused = admin.post(&users).json(&weak).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(refused.text().await.unwrap().contains("12 characters"));
    let listed: Value = admin.get(&users).send().await.unwrap().json().await.unwrap();
    let names: Vec<&str> =
        listed["users"].as_array().unwrap().iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["boss", "newdoc", "nurse"]);
    // The new account signs in.
    let mut browser = Browser::new(&app);
    let page = browser.get(&authorize_url(&app, &client_id, scope, &app.base)).await.text().await.unwrap();
    let mut form = form_fields(&page);
    form.push(("username".into(), "newdoc".into()));
    form.push(("password".into(), "a long enough secret".into()));
    assert_eq!(browser.post("/auth/login", &form).await.status(), StatusCode::SEE_OTHER);
    // Apps: registered active, disabled, and then refused at the token endpoint.
    let clients = format!("{}/auth/admin/clients", app.root);
    let (key, jwks) = es384_key();
    let backend = json!({"client_name": "Exporter", "kind": "confidential-asymmetric", "scope": "system/Patient.rs",
                         "jwks": jwks});
    let registered: Value = admin.post(&clients).json(&backend).send().await.unwrap().json().await.unwrap();
    let id = registered["client_id"].as_str().unwrap();
    let token_url = format!("{}/auth/token", app.root);
    let ask = |jti: &'static str| {
        let signed = assertion(&key, id, &token_url, jti, 120);
        let request = Client::new().post(&token_url).form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &signed),
        ]);
        request.send()
    };
    assert_eq!(ask("admin-1").await.unwrap().status(), StatusCode::OK);
    let disabled = admin.post(format!("{clients}/{id}/disable")).send().await.unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(ask("admin-2").await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

async fn backend_services_sign_and_their_keys_come_only_from_public_addresses(app: TestApp) {
    // A client secret is not how backend services authenticate (unless configured).
    let (client_id, secret) =
        register_app(&app.state, ClientKind::ConfidentialSymmetric, "system/Patient.rs", vec![]).await;
    let token_url = format!("{}/auth/token", app.root);
    let with_secret = Client::new()
        .post(&token_url)
        .basic_auth(&client_id, secret.as_deref())
        .form(&[("grant_type", "client_credentials"), ("scope", "system/Patient.rs")])
        .send()
        .await
        .unwrap();
    assert_eq!(with_secret.status(), StatusCode::BAD_REQUEST);
    let error: Value = with_secret.json().await.unwrap();
    assert_eq!(error["error"], "unauthorized_client", "{error}");
    // A jwks_uri that resolves to this machine is never called: the server there sees nothing.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let (key, jwks) = es384_key();
    let keys = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let jwks = jwks.clone();
            async move { axum::Json(jwks) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks_uri = format!("https://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, keys).await.unwrap() });
    let registered = kiln::auth::accounts::register_client(
        &app.state.store,
        kiln::auth::accounts::NewClient {
            tenant: "test-clinic".into(),
            name: "Keys by URL".into(),
            kind: ClientKind::ConfidentialAsymmetric,
            redirect_uris: vec![],
            scopes: "system/Patient.rs".into(),
            launch_url: None,
            jwks: None,
            jwks_uri: Some(jwks_uri),
            status: "active".into(),
        },
    )
    .await
    .unwrap();
    let id = registered.client.client_id;
    let signed = assertion(&key, &id, &token_url, "by-url-1", 120);
    let refused = Client::new()
        .post(&token_url)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "system/Patient.rs"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", &signed),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let error: Value = refused.json().await.unwrap();
    assert!(error["error_description"].as_str().unwrap().contains("private or local address"), "{error}");
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// Signs in with the password of "doc": answers the page that follows (the code page).
async fn password_step(browser: &mut Browser, authorize: &str) -> String {
    let asked = submit_sign_in(browser, authorize, "doc", "correct horse battery").await;
    assert_eq!(asked.status(), StatusCode::OK, "the password alone does not sign in");
    asked.text().await.unwrap()
}

async fn a_second_factor_is_asked_after_the_password(app: TestApp) {
    staff_user(&app, "doc", "physician").await;
    let uri = kiln::auth::accounts::enroll_second_factor(&app.state.store, &app.state.sensitive, "doc").await.unwrap();
    let secret_text = query_of(&uri)["secret"].clone();
    let secret = kiln::auth::totp::from_base32(&secret_text).unwrap();
    let scope = "openid user/*.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let authorize = authorize_url(&app, &client_id, scope, &app.base);
    let mut browser = Browser::new(&app);
    let page = password_step(&mut browser, &authorize).await;
    assert!(page.contains("name=\"code\""), "{page}");
    let csrf = form_fields(&page).into_iter().find(|(n, _)| n == "csrf").unwrap().1;
    let now = chrono::Utc::now().timestamp();
    let wrong = format!("{:06}", (kiln::auth::totp::code_at(&secret, now).parse::<u32>().unwrap() + 1) % 1_000_000);
    let refused = browser.post("/auth/mfa", &[("csrf".into(), csrf.clone()), ("code".into(), wrong)]).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    // A wrong code ends that sign-in: the right code no longer completes it.
    let code = kiln::auth::totp::code_at(&secret, now);
    let late = browser.post("/auth/mfa", &[("csrf".into(), csrf.clone()), ("code".into(), code.clone())]).await;
    assert_eq!(late.status(), StatusCode::UNAUTHORIZED);
    let page = password_step(&mut browser, &authorize).await;
    let csrf = form_fields(&page).into_iter().find(|(n, _)| n == "csrf").unwrap().1;
    let accepted = browser.post("/auth/mfa", &[("csrf".into(), csrf.clone()), ("code".into(), code.clone())]).await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    let consent = browser.get(&location(&accepted)).await.text().await.unwrap();
    assert!(consent.contains("value=\"allow\""), "signed in after the code: {consent}");
    // The same code cannot sign in a second time.
    let mut other = Browser::new(&app);
    let page = password_step(&mut other, &authorize).await;
    let csrf = form_fields(&page).into_iter().find(|(n, _)| n == "csrf").unwrap().1;
    let replayed = other.post("/auth/mfa", &[("csrf".into(), csrf), ("code".into(), code)]).await;
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
}

async fn a_patient_app_writes_only_into_its_own_record(app: TestApp) {
    let (a, b, _, ob) = two_patients(&app).await;
    patient_user(&app, "pat", &a).await;
    let scope = "launch/patient patient/Observation.crs patient/Patient.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let mut browser = Browser::new(&app);
    let back = sign_in_and_allow(&mut browser, &authorize_url(&app, &client_id, scope, &app.base), "pat").await;
    let token = exchange_code(&app, &back, &client_id).await;
    let patient_app = authorized_client(token["access_token"].as_str().unwrap());
    let post = |body: Value| {
        let client = patient_app.clone();
        let url = app.url("Observation");
        async move {
            client
                .post(url)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
        }
    };
    let reading = |subject: &str, note: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "home blood pressure"},
               "subject": {"reference": format!("Patient/{subject}")}, "note": [{"text": note}]})
    };
    // Naming its own patient somewhere in the text does not make another patient's record its own.
    let sneaky = post(reading(&b, &format!("see \"Patient/{a}\""))).await;
    assert_eq!(sneaky.status(), StatusCode::FORBIDDEN);
    let own = post(reading(&a, "morning")).await;
    assert_eq!(own.status(), StatusCode::CREATED);
    // The patient role adds readings but changes nothing already in the record.
    let update = patient_app
        .put(app.url(&format!("Observation/{ob}")))
        .header("content-type", "application/fhir+json")
        .body(
            json!({"resourceType": "Observation", "id": ob, "status": "final", "code": {"text": "x"},
                     "subject": {"reference": format!("Patient/{a}")}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(update.status(), StatusCode::FORBIDDEN);
    let bundle: Value = app.get(&format!("Observation?subject=Patient/{b}")).await.json().await.unwrap();
    assert_eq!(bundle["total"], 1, "nothing was added to or moved into the other patient's record");
}

async fn a_patient_app_writes_conditionally_and_in_transactions_within_its_record(app: TestApp) {
    let (a, b, _, _) = two_patients(&app).await;
    patient_user(&app, "pat", &a).await;
    let scope = "launch/patient patient/Observation.crs patient/Patient.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let mut browser = Browser::new(&app);
    let back = sign_in_and_allow(&mut browser, &authorize_url(&app, &client_id, scope, &app.base), "pat").await;
    let token = exchange_code(&app, &back, &client_id).await;
    let patient_app = authorized_client(token["access_token"].as_str().unwrap());
    let reading = |subject: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": "home glucose"},
               "subject": {"reference": format!("Patient/{subject}")}})
    };
    let count = |patient: String| {
        let app = &app;
        async move {
            let bundle: Value =
                app.get(&format!("Observation?subject=Patient/{patient}&_summary=count")).await.json().await.unwrap();
            bundle["total"].as_u64().unwrap()
        }
    };
    let transaction = |resources: Vec<Value>| {
        json!({"resourceType": "Bundle", "type": "transaction", "entry": resources.into_iter().map(|resource| json!(
            {"resource": resource, "request": {"method": "POST", "url": "Observation"}})).collect::<Vec<_>>()})
    };
    let (a_before, b_before) = (count(a.clone()).await, count(b.clone()).await);
    let own = send_json(patient_app.post(&app.base), &transaction(vec![reading(&a), reading(&a)])).await;
    assert_eq!(own.status(), StatusCode::OK);
    assert_eq!(count(a.clone()).await, a_before + 2);
    let mixed = send_json(patient_app.post(&app.base), &transaction(vec![reading(&a), reading(&b)])).await;
    let outcome = crate::helpers::expect_outcome(mixed, StatusCode::FORBIDDEN).await;
    assert!(outcome.to_string().contains("Bundle.entry[1]"), "{outcome}");
    assert_eq!(count(a.clone()).await, a_before + 2, "the refused transaction kept nothing");
    assert_eq!(count(b.clone()).await, b_before);
    // A conditional create sees only the patient's own record: another patient's match is
    // neither returned nor counted, and the new reading lands in the patient's own record.
    let mut bs = reading(&b);
    bs["identifier"] = json!([{"system": "urn:home", "value": "7"}]);
    app.create(&bs).await;
    let mut mine = reading(&a);
    mine["identifier"] = bs["identifier"].clone();
    let created =
        send_json(patient_app.post(app.url("Observation")).header("if-none-exist", "identifier=urn:home|7"), &mine)
            .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    assert_eq!(created["subject"]["reference"], format!("Patient/{a}"));
    let again =
        send_json(patient_app.post(app.url("Observation")).header("if-none-exist", "identifier=urn:home|7"), &mine)
            .await;
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], created["id"], "its own match, found again");
    // A condition that chains into Patients tests records the token cannot see: refused.
    let chained = patient_app.post(app.url("Observation")).header("if-none-exist", "subject:Patient.name=Beta");
    assert_eq!(send_json(chained, &mine).await.status(), StatusCode::FORBIDDEN);
    // A conditional reference is resolved within the token's reach: Beta is not found.
    let mut by_name = reading(&a);
    by_name["subject"] = json!({"reference": "Patient?name=Beta"});
    let unresolved = send_json(patient_app.post(&app.base), &transaction(vec![by_name])).await;
    assert_eq!(unresolved.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(count(b.clone()).await, b_before + 1);
}

async fn expired_authorization_state_is_purged(app: TestApp) {
    use kiln::auth::store::{Redeemed, SecretKind, SecretRecord};
    let now = chrono::Utc::now().timestamp();
    let secret = |expires_at| SecretRecord {
        family: "f".into(),
        client_id: "c".into(),
        user_id: None,
        grant_json: "{}".into(),
        expires_at,
    };
    let store = &app.state.store;
    store.insert_secret("long-gone", SecretKind::AuthorizationCode, &secret(now - 2 * 24 * 3600)).await.unwrap();
    store.insert_secret("just-expired", SecretKind::AuthorizationCode, &secret(now - 60)).await.unwrap();
    store.purge_expired(now, now - 3600, now - 600).await.unwrap();
    let gone = store.redeem_secret("long-gone", SecretKind::AuthorizationCode, now).await.unwrap();
    assert!(matches!(gone, Redeemed::Unknown), "{gone:?}");
    let kept = store.redeem_secret("just-expired", SecretKind::AuthorizationCode, now).await.unwrap();
    assert!(matches!(kept, Redeemed::Fresh(_)), "kept a day for reuse detection: {kept:?}");
}

async fn a_standalone_launch_may_choose_the_encounter(app: TestApp) {
    let (a, b, ..) = two_patients(&app).await;
    patient_user(&app, "pat", &a).await;
    let visit = |p: &str, start: &str| {
        json!({"resourceType": "Encounter", "status": "finished",
               "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB", "display": "ambulatory"},
               "subject": {"reference": format!("Patient/{p}")}, "period": {"start": start, "end": start}})
    };
    let older = app.create(&visit(&a, "2024-01-05T10:00:00Z")).await;
    let newer = app.create(&visit(&a, "2025-02-07T10:00:00Z")).await;
    let others = app.create(&visit(&b, "2025-03-01T10:00:00Z")).await;
    let scope = "launch/patient launch/encounter patient/*.rs";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![REDIRECT.into()]).await;
    let mut browser = Browser::new(&app);
    let signed_in = submit_sign_in(
        &mut browser,
        &authorize_url(&app, &client_id, scope, &app.base),
        "pat",
        "correct horse battery",
    )
    .await;
    let consent = browser.get(&location(&signed_in)).await.text().await.unwrap();
    let newer_at = consent.find(&format!("value=\"{newer}\"")).expect("the newer visit is offered");
    let older_at = consent.find(&format!("value=\"{older}\"")).expect("the older visit is offered");
    assert!(newer_at < older_at, "newest first");
    assert!(!consent.contains(&others), "only the patient's own visits");
    let mut allow = form_fields(&consent);
    allow.push(("decision".into(), "allow".into()));
    // Another patient's encounter cannot be slipped in.
    let mut forged = allow.clone();
    forged.push(("encounter".into(), others.clone()));
    let refused = location(&browser.post("/auth/consent", &forged).await);
    assert_eq!(query_of(&refused)["error"], "invalid_request");
    let page = browser.get(&authorize_url(&app, &client_id, scope, &app.base)).await.text().await.unwrap();
    let mut allow = form_fields(&page);
    allow.push(("decision".into(), "allow".into()));
    allow.push(("encounter".into(), older.clone()));
    let back = location(&browser.post("/auth/consent", &allow).await);
    let token = exchange_code(&app, &back, &client_id).await;
    assert_eq!(token["encounter"], older.as_str());
    assert_eq!(token["fhirContext"][0]["reference"], format!("Encounter/{older}"));
}

const CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// An Observation of one category (`code` also names it, for telling them apart).
fn categorised(code: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": code},
           "category": [{"coding": [{"system": CATEGORY, "code": code}]}]})
}

/// The ids of a searchset's matches, in order.
fn ids_of(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|entries| entries.iter().map(|e| e["resource"]["id"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// How many Observations of `category` the store holds (seen with a full-access token).
async fn count_of(app: &TestApp, category: &str) -> u64 {
    let bundle: Value = app.get(&format!("Observation?category={category}&_summary=count")).await.json().await.unwrap();
    bundle["total"].as_u64().unwrap()
}

async fn send_json(request: reqwest::RequestBuilder, body: &Value) -> reqwest::Response {
    request.header("content-type", "application/fhir+json").body(body.to_string()).send().await.unwrap()
}

async fn a_granular_scope_filters_reads_and_searches(app: TestApp) {
    let lab = app.create(&categorised("laboratory")).await;
    let vital = app.create(&categorised("vital-signs")).await;
    let social = app.create(&categorised("social-history")).await;
    let labs_only = backend_client(&app, &format!("system/Observation.crs?category={CATEGORY}|laboratory")).await;
    let bundle: Value = labs_only.get(app.url("Observation")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ids_of(&bundle), vec![lab.clone()]);
    assert!(!bundle["link"].to_string().contains("category"), "the scope's filter is not echoed: {bundle}");
    assert_eq!(labs_only.get(app.url(&format!("Observation/{lab}"))).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        labs_only.get(app.url(&format!("Observation/{vital}"))).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Two granular scopes for one type: a resource matching either is reachable, no other.
    let two = format!(
        "system/Observation.rs?category={CATEGORY}|laboratory system/Observation.rs?category={CATEGORY}|vital-signs"
    );
    let labs_and_vitals = backend_client(&app, &two).await;
    let bundle: Value =
        labs_and_vitals.get(app.url("Observation?_sort=_id")).send().await.unwrap().json().await.unwrap();
    let mut expected = vec![lab.clone(), vital.clone()];
    expected.sort();
    assert_eq!(ids_of(&bundle), expected);
    assert_eq!(bundle["total"], 2);
    let status = labs_and_vitals.get(app.url(&format!("Observation/{social}"))).send().await.unwrap().status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A filter combines with the query's own parameters (AND), and with `_id`.
    let bundle: Value = labs_and_vitals
        .get(app.url(&format!("Observation?_id={vital},{social}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids_of(&bundle), vec![vital]);
}

async fn granular_scopes_decide_writes_by_what_is_written(app: TestApp) {
    let labs = backend_client(&app, &format!("system/Observation.cruds?category={CATEGORY}|laboratory")).await;
    let vitals_before = count_of(&app, "vital-signs").await;
    // A create is kept only when what it wrote matches the filter.
    let created = send_json(labs.post(app.url("Observation")), &categorised("laboratory")).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let lab: Value = created.json().await.unwrap();
    let lab_id = lab["id"].as_str().unwrap().to_string();
    let refused = send_json(labs.post(app.url("Observation")), &categorised("vital-signs")).await;
    let outcome = crate::helpers::expect_outcome(refused, StatusCode::FORBIDDEN).await;
    assert!(outcome.to_string().contains("category="), "the outcome names the filter: {outcome}");
    assert_eq!(count_of(&app, "vital-signs").await, vitals_before, "the refused create left nothing");
    // An update may change a reachable resource, but not move it out of reach.
    let mut moved = categorised("vital-signs");
    moved["id"] = json!(lab_id);
    let refused = send_json(labs.put(app.url(&format!("Observation/{lab_id}"))), &moved).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let stored: Value = app.get(&format!("Observation/{lab_id}")).await.json().await.unwrap();
    assert_eq!(stored["meta"]["versionId"], "1", "the refused update wrote no version");
    let mut noted = categorised("laboratory");
    noted["id"] = json!(lab_id);
    noted["note"] = json!([{"text": "haemolysed"}]);
    let updated = send_json(labs.put(app.url(&format!("Observation/{lab_id}"))), &noted).await;
    assert_eq!(updated.status(), StatusCode::OK);
    // A resource outside the filter cannot be changed, deleted or patched into it.
    let vital = app.create(&categorised("vital-signs")).await;
    let mut relabelled = categorised("laboratory");
    relabelled["id"] = json!(vital);
    let status = send_json(labs.put(app.url(&format!("Observation/{vital}"))), &relabelled).await.status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        labs.delete(app.url(&format!("Observation/{vital}"))).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // Conditional writes see only what the filter reaches: the vital sign is not matched.
    let mut tagged = categorised("laboratory");
    tagged["identifier"] = json!([{"system": "urn:lab", "value": "L-1"}]);
    let first =
        send_json(labs.post(app.url("Observation")).header("if-none-exist", "identifier=urn:lab|L-1"), &tagged).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let again =
        send_json(labs.post(app.url("Observation")).header("if-none-exist", "identifier=urn:lab|L-1"), &tagged).await;
    assert_eq!(again.status(), StatusCode::OK, "the match is found and nothing is written");
    let deleted = labs.delete(app.url("Observation?code:text=vital-signs")).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("Observation/{vital}")).await.status(), StatusCode::OK, "out of reach, not deleted");
    let mut conditional_move = tagged.clone();
    conditional_move["category"] = categorised("vital-signs")["category"].clone();
    let status = send_json(labs.put(app.url("Observation?identifier=urn:lab|L-1")), &conditional_move).await.status();
    assert_eq!(status, StatusCode::FORBIDDEN);
    // In a transaction, one entry beyond the filter refuses the whole Bundle.
    let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:0b8a5a4e-1c52-4d55-9a3f-2f6b1c0d9e01", "resource": categorised("laboratory"),
         "request": {"method": "POST", "url": "Observation"}},
        {"fullUrl": "urn:uuid:0b8a5a4e-1c52-4d55-9a3f-2f6b1c0d9e02", "resource": categorised("vital-signs"),
         "request": {"method": "POST", "url": "Observation"}}]});
    let labs_before = count_of(&app, "laboratory").await;
    let vitals_before = count_of(&app, "vital-signs").await;
    let refused = send_json(labs.post(&app.base), &bundle).await;
    let outcome = crate::helpers::expect_outcome(refused, StatusCode::FORBIDDEN).await;
    assert!(outcome.to_string().contains("Bundle.entry[1]"), "the outcome names the entry: {outcome}");
    assert_eq!(count_of(&app, "laboratory").await, labs_before, "nothing of the transaction was kept");
    assert_eq!(count_of(&app, "vital-signs").await, vitals_before);
    let mut only_labs = bundle.clone();
    only_labs["entry"].as_array_mut().unwrap().pop();
    let accepted = send_json(labs.post(&app.base), &only_labs).await;
    assert_eq!(accepted.status(), StatusCode::OK);
    assert_eq!(count_of(&app, "laboratory").await, labs_before + 1);
}

crate::on_both_backends!(
    missing_and_bad_tokens_are_refused,
    discovery_names_the_endpoints_and_keys,
    a_patient_app_sees_only_its_patient,
    authorize_refuses_bad_requests,
    refresh_tokens_rotate_and_reuse_revokes,
    backend_services_sign_their_own_assertion,
    tenants_do_not_see_each_other,
    a_rotated_key_keeps_verifying_on_every_node,
    clinicians_pick_a_patient_and_roles_bound_user_tokens,
    browser_apps_may_call_the_api_from_another_origin,
    administrators_manage_accounts_and_apps_over_http,
    a_second_factor_is_asked_after_the_password,
    a_patient_app_writes_only_into_its_own_record,
    expired_authorization_state_is_purged,
    a_standalone_launch_may_choose_the_encounter,
    a_granular_scope_filters_reads_and_searches,
    granular_scopes_decide_writes_by_what_is_written,
    backend_services_sign_and_their_keys_come_only_from_public_addresses,
    a_patient_app_writes_conditionally_and_in_transactions_within_its_record,
);
