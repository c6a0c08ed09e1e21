//! Account safeguards of the sign-in pages (issue: safeguards, "Accounts"): lockout after failed
//! sign-ins and unlocking by an administrator, a second factor required per role, password
//! expiry, and HIPAA training required for staff.

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, authorized_client, register_app};
use crate::smart::{Browser, staff_user, submit_sign_in};
use kiln::auth::accounts::ClientKind;

const PASSWORD: &str = "correct horse battery";

/// Signs in on a fresh browser: the redirect on success, the page's text on refusal.
async fn sign_in(app: &TestApp, username: &str, password: &str) -> Result<String, String> {
    let mut browser = Browser::new(app);
    let response = submit_sign_in(&mut browser, "/auth/login", username, password).await;
    match response.status() {
        StatusCode::SEE_OTHER => Ok(response.headers()["location"].to_str().unwrap().to_string()),
        _ => Err(response.text().await.unwrap()),
    }
}

fn kiln(app: &TestApp, args: &[&str]) -> std::process::Output {
    crate::helpers::kiln_cli(app, args, &[("KILN_NEW_PASSWORD", "another long passphrase")])
}

async fn audit_events(app: &TestApp, query: &str) -> Vec<Value> {
    let bundle: Value = app.get(&format!("AuditEvent?{query}")).await.json().await.unwrap();
    bundle["entry"].as_array().cloned().unwrap_or_default().into_iter().map(|e| e["resource"].clone()).collect()
}

async fn five_failures_lock_the_account_until_an_administrator_unlocks_it(app: TestApp) {
    staff_user(&app, "nurse", "nurse").await;
    // Failures below the threshold are forgotten after a successful sign-in.
    for _ in 0..4 {
        assert!(sign_in(&app, "nurse", "wrong password").await.is_err());
    }
    sign_in(&app, "nurse", PASSWORD).await.expect("four failures do not lock");
    for _ in 0..5 {
        let page = sign_in(&app, "nurse", "wrong password").await.unwrap_err();
        assert!(page.contains("wrong"), "the same answer as for an unknown user: {page}");
    }
    let page = sign_in(&app, "nurse", PASSWORD).await.unwrap_err();
    assert!(page.contains("locked"), "the right password no longer signs in: {page}");
    let locks = audit_events(&app, "subtype=110122&outcome=4&_count=100").await;
    assert!(locks.iter().any(|e| e["outcomeDesc"].as_str().unwrap_or("").contains("locked after 5")), "{locks:?}");

    // An administrator unlocks it with `kiln user unlock`.
    let unlocked = kiln(&app, &["user", "unlock", "--username", "nurse"]);
    assert!(unlocked.status.success(), "{}", String::from_utf8_lossy(&unlocked.stderr));
    sign_in(&app, "nurse", PASSWORD).await.expect("unlocked");
    let unknown = kiln(&app, &["user", "unlock", "--username", "nobody"]);
    assert!(!unknown.status.success());
}

async fn the_admin_api_unlocks_and_shows_lockouts(app: TestApp) {
    staff_user(&app, "nurse", "nurse").await;
    for _ in 0..5 {
        let _ = sign_in(&app, "nurse", "wrong password").await;
    }
    let admin = admin_token(&app).await;
    let users: Value = admin.get(format!("{}/auth/admin/users", app.root)).send().await.unwrap().json().await.unwrap();
    let nurse = users["users"].as_array().unwrap().iter().find(|u| u["username"] == "nurse").unwrap().clone();
    assert_eq!(nurse["locked"], true);
    assert_eq!(nurse["failedSignIns"], 5);
    let id = nurse["id"].as_str().unwrap();
    let unlocked = admin.post(format!("{}/auth/admin/users/{id}/unlock", app.root)).send().await.unwrap();
    assert_eq!(unlocked.status(), StatusCode::OK);
    let body: Value = unlocked.json().await.unwrap();
    assert_eq!(body["locked"], false);
    sign_in(&app, "nurse", PASSWORD).await.expect("unlocked");
    let missing = admin.post(format!("{}/auth/admin/users/nobody/unlock", app.root)).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

/// A token of a signed-in administrator with the `kiln/admin` scope.
async fn admin_token(app: &TestApp) -> reqwest::Client {
    staff_user(app, "boss", "admin").await;
    let scope = "openid fhirUser kiln/admin";
    let (client_id, _) = register_app(&app.state, ClientKind::Public, scope, vec![crate::smart::REDIRECT.into()]).await;
    let mut browser = Browser::new(app);
    let authorize = crate::smart::authorize_url(app, &client_id, scope, &app.base);
    let back = crate::smart::sign_in_and_allow(&mut browser, &authorize, "boss").await;
    let token = crate::smart::exchange_code(app, &back, &client_id).await;
    authorized_client(token["access_token"].as_str().unwrap())
}

async fn roles_can_require_a_second_factor(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.second_factor_required_roles = "physician".into(), |a| a).await
    else {
        return;
    };
    staff_user(&app, "doc", "physician").await;
    staff_user(&app, "nurse", "nurse").await;
    let page = sign_in(&app, "doc", PASSWORD).await.unwrap_err();
    assert!(page.contains("second factor"), "{page}");
    sign_in(&app, "nurse", PASSWORD).await.expect("the nurse's role does not require one");
    kiln::auth::accounts::enroll_second_factor(&app.state.store, &app.state.sensitive, "doc").await.unwrap();
    let mut browser = Browser::new(&app);
    let asked = submit_sign_in(&mut browser, "/auth/login", "doc", PASSWORD).await;
    assert_eq!(asked.status(), StatusCode::OK);
    assert!(asked.text().await.unwrap().contains("name=\"code\""), "the one-time code page");
}

async fn passwords_expire_and_an_administrator_sets_a_new_one(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.password_max_age_days = 90, |a| a).await else { return };
    staff_user(&app, "nurse", "nurse").await;
    sign_in(&app, "nurse", PASSWORD).await.expect("a new password is valid");
    let user = app.state.store.user_by_name("nurse").await.unwrap().unwrap();
    let long_ago = chrono::Utc::now().timestamp() - 91 * 24 * 3600;
    app.state.store.set_password(&user.user_id, &user.password_hash, long_ago).await.unwrap();
    let page = sign_in(&app, "nurse", PASSWORD).await.unwrap_err();
    assert!(page.contains("expired"), "{page}");
    let weak = crate::helpers::kiln_cli(
        &app,
        &["user", "set-password", "--username", "nurse"],
        &[("KILN_NEW_PASSWORD", "short")],
    );
    assert!(!weak.status.success(), "the password policy holds for new passwords");
    let set = kiln(&app, &["user", "set-password", "--username", "nurse"]);
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert!(sign_in(&app, "nurse", PASSWORD).await.is_err(), "the old password is gone");
    sign_in(&app, "nurse", "another long passphrase").await.expect("the new password signs in");
}

async fn staff_need_current_hipaa_training(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, |s| s.training_max_age_days = 365, |a| a).await else { return };
    staff_user(&app, "nurse", "nurse").await;
    let page = sign_in(&app, "nurse", PASSWORD).await.unwrap_err();
    assert!(page.contains("training"), "{page}");
    let stale = (chrono::Utc::now() - chrono::Duration::days(400)).date_naive().to_string();
    let recorded = kiln(&app, &["user", "training", "--username", "nurse", "--date", &stale]);
    assert!(recorded.status.success());
    assert!(sign_in(&app, "nurse", PASSWORD).await.is_err(), "training over a year old has lapsed");
    let recorded = kiln(&app, &["user", "training", "--username", "nurse"]);
    assert!(recorded.status.success());
    sign_in(&app, "nurse", PASSWORD).await.expect("training today");
}

crate::on_both_backends!(
    five_failures_lock_the_account_until_an_administrator_unlocks_it,
    the_admin_api_unlocks_and_shows_lockouts,
);

mod configured {
    crate::on_both_backend_kinds!(
        roles_can_require_a_second_factor,
        passwords_expire_and_an_administrator_sets_a_new_one,
        staff_need_current_hipaa_training,
    );
    use super::*;
}
