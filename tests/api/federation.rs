//! Sign-in through the clinic's own OpenID Connect provider: a second Kiln, in its own process
//! with its own database, plays the provider; the Kiln under test is the relying party.

use reqwest::StatusCode;
use std::process::{Command, Stdio};

use crate::helpers::{Backend, TestApp, free_port, fresh_database};
use crate::smart::{Browser, form_fields, location};
use kiln::auth::accounts::{NewUser, create_user};

/// `kiln serve` as the identity provider, on its own database; killed when dropped.
struct Provider {
    child: std::process::Child,
    base: String,
    database_url: String,
    _database: Option<tempfile::TempDir>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    async fn start(backend: Backend) -> Option<Provider> {
        let (database_url, database) = fresh_database(backend).await?;
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .arg("serve")
            .env("KILN_DATABASE_URL", &database_url)
            .env("KILN_LISTEN", format!("127.0.0.1:{port}"))
            .env("KILN_LOG", "warn")
            .stdin(Stdio::null())
            .spawn()
            .expect("the provider starts");
        let provider =
            Provider { child, base: format!("http://127.0.0.1:{port}/fhir"), database_url, _database: database };
        for _ in 0..200 {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/health")).await
                && r.status().is_success()
            {
                return Some(provider);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the provider did not become healthy");
    }

    /// Runs a `kiln` command on the provider's database; answers its standard output.
    fn kiln(&self, args: &[&str], password: Option<&str>) -> String {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
        command.args(args).env("KILN_DATABASE_URL", &self.database_url).env("KILN_LOG", "warn");
        if let Some(password) = password {
            command.env("KILN_NEW_PASSWORD", password);
        }
        let output = command.output().expect("kiln runs");
        assert!(output.status.success(), "kiln {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).unwrap()
    }
}

async fn signing_in_through_the_clinic_provider(backend: Backend) {
    let Some(provider) = Provider::start(backend).await else { return };
    let created = provider
        .kiln(&["user", "create", "--username", "sso-user", "--role", "physician"], Some("provider password 1"));
    let subject = created.trim().rsplit("id ").next().unwrap().to_string();
    let port = free_port();
    let callback = format!("http://127.0.0.1:{port}/auth/federation/callback");
    let registered = provider.kiln(
        &[
            "client",
            "register",
            "--name",
            "Kiln relying party",
            "--kind",
            "confidential-symmetric",
            "--redirect-uri",
            &callback,
            "--scope",
            "openid fhirUser profile",
            "--shell",
        ],
        None,
    );
    let value = |name: &str| registered.lines().find_map(|l| l.strip_prefix(&format!("{name}="))).unwrap().to_string();
    let (client_id, secret) = (value("KILN_CLIENT_ID"), value("KILN_CLIENT_SECRET"));
    let issuer = provider.base.clone();
    let Some(app) = TestApp::start_with(
        backend,
        |s| {
            s.listen = format!("127.0.0.1:{port}");
            s.oidc_issuer = Some(issuer.clone());
            s.oidc_client_id = Some(client_id.clone());
            s.oidc_client_secret = Some(secret.clone());
            s.oidc_name = Some("Clinic SSO".into());
        },
        |a| a,
    )
    .await
    else {
        return;
    };
    let linked = kiln::auth::federation::external_subject(&issuer, &subject);
    create_user(
        &app.state.store,
        NewUser {
            tenant: "test-clinic".into(),
            username: "drsso".into(),
            password: "a local password too".into(),
            role: "physician".into(),
            fhir_user: None,
            display_name: Some("Dr Single Sign-On".into()),
            external_subject: Some(linked),
        },
    )
    .await
    .unwrap();

    let mut browser = Browser::new(&app);
    let page = browser.get("/auth/login?next=/auth/launcher").await.text().await.unwrap();
    assert!(page.contains("Sign in with Clinic SSO"), "{page}");
    // Starting leaves for the provider's authorization endpoint.
    let start = browser.get("/auth/federation/start?next=/auth/launcher").await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let to_provider = location(&start);
    assert!(
        to_provider.starts_with(&format!("{}/auth/authorize", provider.base.trim_end_matches("/fhir"))),
        "{to_provider}"
    );
    // At the provider: its sign-in page, then its consent page.
    let sign_in = browser.get(&to_provider).await.text().await.unwrap();
    let mut form = form_fields(&sign_in);
    form.push(("username".into(), "sso-user".into()));
    form.push(("password".into(), "provider password 1".into()));
    let signed_in = browser.post("/auth/login", &form).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let consent = browser.get(&location(&signed_in)).await.text().await.unwrap();
    let mut form = form_fields(&consent);
    form.push(("decision".into(), "allow".into()));
    let back = browser.post("/auth/consent", &form).await;
    let callback_url = location(&back);
    assert!(callback_url.starts_with(&callback), "{callback_url}");

    // Someone else's browser cannot complete this sign-in (the state is bound to a cookie).
    let mut stranger = Browser::new(&app);
    assert_eq!(stranger.get(&callback_url).await.status(), StatusCode::BAD_REQUEST);

    // Back at Kiln: the ID token is checked and the linked account is signed in.
    let done = browser.get(&callback_url).await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER, "{}", done.text().await.unwrap());
    assert_eq!(location(&done), "/auth/launcher");
    let launcher = browser.get("/auth/launcher").await.text().await.unwrap();
    assert!(launcher.contains("Dr Single Sign-On"), "{launcher}");
    // The callback cannot be replayed.
    assert_eq!(browser.get(&callback_url).await.status(), StatusCode::BAD_REQUEST);
}

crate::on_both_backend_kinds!(signing_in_through_the_clinic_provider);
