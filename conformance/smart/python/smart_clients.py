#!/usr/bin/env python3
"""Kiln's SMART flows, driven by clients written by others.

- fhirclient (SMART on FHIR's Python client) does a standalone launch as a public client:
  it finds the endpoints in the CapabilityStatement, builds the authorize URL itself (fhirclient
  4.x sends PKCE S256 and aud = the FHIR base URL on its own), exchanges the code with its
  verifier, reads the Patient and searches Observations through its models, and refreshes.
  fhirclient ignores the id_token; PyJWT verifies it against /auth/jwks.
- requests-oauthlib's OAuth2Session (pkce="S256") does the same flow a second time, refreshes,
  and drives the refusal checks (reused code, bad verifier, wrong aud).
- A backend service signs RS384 / ES384 client assertions with PyJWT and gets system/ tokens
  through fhirclient's client_credentials support (its `jwt_token` setting).

The person at the browser is a requests.Session that signs in on Kiln's sign-in page and
allows on its consent page; the redirect URI is never served: the code is read from the
Location of the final redirect.

One line per check, `ok   <name>` or `FAIL <name>: why`; the exit status is 1 if any failed.

Two modes:
  smart_clients.py --base URL --public-client-id ID --username U [--password P] \
      --patient-id ID --other-patient-id ID [--backend CLIENT_ID:KEY.pem ...]
  smart_clients.py --keygen RS384|ES384 --key-out KEY.pem --jwks-out JWKS.json
"""

import argparse
import base64
import contextlib
import hashlib
import html
import json
import logging
import os
import secrets
import sys
import time
import urllib.parse
from html.parser import HTMLParser

# OAuthlib refuses plain http unless told otherwise; Kiln listens on the loopback here.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
# Kiln may answer with the granted scopes in another order than requested; that is not an error.
os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")

import jwt  # noqa: E402  (PyJWT)
import requests  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from fhirclient import client as fhir_client  # noqa: E402
from fhirclient.models.observation import Observation  # noqa: E402
from fhirclient.models.patient import Patient  # noqa: E402
from fhirclient.server import (  # noqa: E402
    FHIRPermissionDeniedException,
    FHIRUnauthorizedException,
)
from requests_oauthlib import OAuth2Session  # noqa: E402

# fhirclient logs "Received an id_token, ignoring" as a warning: the id_token is checked here.
logging.getLogger("fhirclient").setLevel(logging.ERROR)

PATIENT_SCOPES = "launch/patient openid fhirUser offline_access patient/*.rs"
TIMEOUT = 15


class Failed(Exception):
    pass


class Abort(Exception):
    """A check a flow depends on failed: the rest of that flow is not run."""


def why(err):
    response = getattr(err, "response", None)
    if response is not None and hasattr(response, "status_code"):
        body = response.text.strip().replace("\n", " ")
        return f"{type(err).__name__}: HTTP {response.status_code} {body[:300]}"
    return f"{type(err).__name__}: {err}" if not isinstance(err, Failed) else str(err)


class Report:
    def __init__(self):
        self.passed = 0
        self.failed = []

    @contextlib.contextmanager
    def check(self, name, fatal=True):
        """`with report.check(name) as c:` -- `c.detail = ...` adds to the ok line."""
        step = argparse.Namespace(detail="")
        try:
            yield step
        except Abort:
            raise
        except Exception as err:  # noqa: BLE001 -- every failure becomes a FAIL line
            self.failed.append(name)
            print(f"FAIL {name}: {why(err)}", flush=True)
            if fatal:
                raise Abort(name) from err
            return
        self.passed += 1
        print(f"ok   {name}" + (f" ({step.detail})" if step.detail else ""), flush=True)

    def not_run(self, flow, after):
        self.failed.append(flow)
        print(f"FAIL {flow}: the rest of this flow was not run after '{after}' failed", flush=True)


def expect(condition, message):
    if not condition:
        raise Failed(message)


def query_of(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


# ---------------------------------------------------------------------------------------------
# The browser: a person signing in and allowing, played by requests.Session + html.parser
# ---------------------------------------------------------------------------------------------


class FormParser(HTMLParser):
    """The forms of a page with their inputs. HTMLParser unescapes attribute values
    (`&#x2f;` -> `/`), which Kiln's templates escape."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms = []
        self.title = ""
        self._in_title = False
        self.text = []

    def handle_starttag(self, tag, attrs):
        a = {name: (html.unescape(value) if value is not None else "") for name, value in attrs}
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": a.get("method", "get").lower(),
                               "inputs": []})
        elif tag in ("input", "button") and self.forms:
            self.forms[-1]["inputs"].append({
                "tag": tag,
                "type": a.get("type", "text" if tag == "input" else "submit").lower(),
                "name": a.get("name"),
                "value": a.get("value", ""),
                "checked": "checked" in a,
                "disabled": "disabled" in a,
            })
        elif tag == "title":
            self._in_title = True

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif data.strip():
            self.text.append(data.strip())


class Browser:
    def __init__(self, username, password, redirect_uri):
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "kiln-conformance-browser/1"
        self.username = username
        self.password = password
        self.redirect_uri = redirect_uri

    def authorize(self, url):
        """Follows an authorize URL through sign-in and consent, redirect by redirect, and
        returns (the Location that goes back to the redirect URI, the steps taken)."""
        steps = []
        response = self.session.get(url, allow_redirects=False, timeout=TIMEOUT)
        for _ in range(12):
            if response.is_redirect:
                location = urllib.parse.urljoin(response.url, response.headers["Location"])
                if location.startswith(self.redirect_uri + "?") or location == self.redirect_uri:
                    steps.append(f"{response.status_code} to the redirect URI")
                    return location, steps
                steps.append(f"{response.status_code} to {urllib.parse.urlsplit(location).path}")
                response = self.session.get(location, allow_redirects=False, timeout=TIMEOUT)
                continue
            page = FormParser()
            page.feed(response.text)
            if response.status_code != 200:
                raise Failed(f"HTTP {response.status_code} on {response.url}: {page.title.strip()} "
                             f"{' '.join(page.text)[:200]}")
            sign_in = next((f for f in page.forms if any(i["type"] == "password" for i in f["inputs"])), None)
            consent = next((f for f in page.forms if f["action"].endswith("/auth/consent")), None)
            if sign_in is not None:
                data = [(i["name"], i["value"]) for i in sign_in["inputs"]
                        if i["type"] == "hidden" and i["name"]]
                names = {name for name, _ in data}
                expect({"csrf", "next"} <= names, f"sign-in form lacks csrf/next hidden inputs: {sorted(names)}")
                data += [("username", self.username), ("password", self.password)]
                action = urllib.parse.urljoin(response.url, sign_in["action"])
                steps.append("sign-in")
                response = self.session.post(action, data=data, allow_redirects=False, timeout=TIMEOUT)
                expect(response.status_code == 303,
                       f"POST {action} answered {response.status_code}, not 303 (wrong password?)")
            elif consent is not None:
                data = []
                ticked = []
                for i in consent["inputs"]:
                    if not i["name"] or i["disabled"]:
                        continue
                    if i["type"] == "hidden":
                        data.append((i["name"], i["value"]))
                    elif i["type"] == "checkbox" and i["checked"]:
                        data.append((i["name"], i["value"]))
                        if i["name"] == "scope":
                            ticked.append(i["value"])
                expect(any(name == "csrf" for name, _ in data), "consent form has no csrf input")
                data.append(("decision", "allow"))
                action = urllib.parse.urljoin(response.url, consent["action"])
                steps.append(f"consent ({len(ticked)} scopes ticked)")
                response = self.session.post(action, data=data, allow_redirects=False, timeout=TIMEOUT)
                expect(response.status_code == 303, f"POST {action} answered {response.status_code}, not 303")
            else:
                raise Failed(f"unexpected page {response.url}: {page.title.strip()} {' '.join(page.text)[:200]}")
        raise Failed(f"more than 12 steps without reaching the redirect URI: {steps}")

    def first_hop(self, url):
        return self.session.get(url, allow_redirects=False, timeout=TIMEOUT)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def oauth_error(response, status, error):
    """Checks an OAuth error answer (RFC 6749 §5.2)."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    expect(response.status_code == status and body.get("error") == error,
           f"expected HTTP {status} {error}, got HTTP {response.status_code} {response.text[:300]}")
    return body.get("error_description", "")


def wait_for_status(fetch, status, seconds=6.0):
    """Kiln says revoked grants are seen within two seconds: poll a little longer than that."""
    deadline = time.monotonic() + seconds
    last = None
    while True:
        last = fetch()
        if last.status_code == status or time.monotonic() > deadline:
            return last
        time.sleep(0.25)


def bearer_get(url, token):
    return requests.get(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"},
                        timeout=TIMEOUT)


def jwk_thumbprint(jwk):
    """RFC 7638 thumbprint, used as the kid so that the key file alone names its kid."""
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).decode().rstrip("=")


def public_jwk(private_key):
    if isinstance(private_key, rsa.RSAPrivateKey):
        jwk, alg = jwt.algorithms.RSAAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "RS384"
    elif isinstance(private_key, ec.EllipticCurvePrivateKey):
        jwk, alg = jwt.algorithms.ECAlgorithm.to_jwk(private_key.public_key(), as_dict=True), "ES384"
    else:
        raise ValueError("only RSA and EC keys")
    jwk = {k: v for k, v in jwk.items() if k in ("kty", "n", "e", "crv", "x", "y")}
    jwk.update({"kid": jwk_thumbprint(jwk), "alg": alg, "use": "sig"})
    return jwk


def keygen(alg, key_out, jwks_out):
    if alg == "RS384":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(ec.SECP384R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with open(os.open(key_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(pem)
    jwk = public_jwk(key)
    with open(jwks_out, "w") as f:
        json.dump({"keys": [jwk]}, f, indent=1)
    print(f"{alg} key {jwk['kid']} -> {key_out}, {jwks_out}")


# ---------------------------------------------------------------------------------------------
# The flows
# ---------------------------------------------------------------------------------------------


class Run:
    def __init__(self, args):
        self.args = args
        self.base = args.base.rstrip("/")
        self.report = Report()
        self.browser = Browser(args.username, args.password, args.redirect_uri)
        self.config = {}

    # -- discovery ------------------------------------------------------------------------
    def discovery(self):
        r = self.report
        with r.check("discovery: .well-known/smart-configuration offers PKCE S256 and the endpoints") as c:
            response = requests.get(f"{self.base}/.well-known/smart-configuration", timeout=TIMEOUT)
            response.raise_for_status()
            self.config = response.json()
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                expect(self.config.get(key), f"no {key}")
            expect("S256" in self.config.get("code_challenge_methods_supported", []), "S256 not offered")
            expect(self.config.get("issuer", "").rstrip("/") == self.base, f"issuer {self.config.get('issuer')}")
            c.detail = f"token endpoint {self.config['token_endpoint']}"

    # -- fhirclient standalone launch -------------------------------------------------------
    def fhirclient_standalone(self):
        r, a = self.report, self.args
        saved = {}
        settings = {
            "app_id": a.public_client_id,
            "api_base": self.base,
            "redirect_uri": a.redirect_uri,
            # fhirclient puts launch/patient in front by itself (no patient yet, wants_patient).
            "scope": PATIENT_SCOPES.replace("launch/patient ", ""),
        }
        smart = fhir_client.FHIRClient(settings=settings, save_func=saved.update)
        with r.check("fhirclient: authorize URL from the CapabilityStatement has PKCE S256 and aud") as c:
            url = smart.authorize_url
            q = query_of(url)
            expect(url.startswith(self.config["authorization_endpoint"] + "?"), f"authorize URL {url}")
            expect(q.get("code_challenge_method") == "S256" and q.get("code_challenge"), f"no PKCE S256 in {q}")
            expect(q.get("aud") == self.base, f"aud {q.get('aud')!r}")
            expect(q.get("scope") == PATIENT_SCOPES, f"scope {q.get('scope')!r}")
            c.detail = f"scope '{q['scope']}'"
        with r.check("browser: sign-in and consent send the code back to the redirect URI") as c:
            location, steps = self.browser.authorize(url)
            q = query_of(location)
            expect("code" in q and "error" not in q, f"redirected to {location}")
            expect(q.get("state") == smart.server.auth.auth_state, "state not echoed")
            c.detail = " -> ".join(steps)
        with r.check("fhirclient: exchanges the code with its PKCE verifier") as c:
            smart.handle_callback(location)
            ctx = smart.launch_context or {}
            expect(smart.server.auth.access_token, "no access token")
            expect(ctx.get("patient") == a.patient_id and smart.patient_id == a.patient_id,
                   f"patient {ctx.get('patient')!r}, expected {a.patient_id}")
            expect(smart.server.auth.refresh_token, "no refresh_token (offline_access)")
            expect(ctx.get("id_token"), "no id_token (openid)")
            expect(str(ctx.get("token_type", "")).lower() == "bearer", f"token_type {ctx.get('token_type')!r}")
            granted = str(ctx.get("scope", "")).split()
            expect("patient/*.rs" in granted, f"granted scope {ctx.get('scope')!r}")
            c.detail = f"scope '{ctx.get('scope')}', patient {ctx.get('patient')}"
        with r.check("id_token: RS256 signature verified against /auth/jwks, aud = client_id, "
                     "fhirUser names the patient", fatal=False) as c:
            id_token = smart.launch_context["id_token"]
            expect(jwt.get_unverified_header(id_token).get("alg") == "RS256", "id_token alg is not RS256")
            signing_key = jwt.PyJWKClient(self.config["jwks_uri"]).get_signing_key_from_jwt(id_token)
            claims = jwt.decode(id_token, signing_key.key, algorithms=["RS256"], audience=a.public_client_id,
                                issuer=self.config.get("issuer", self.base),
                                options={"require": ["exp", "iat", "iss", "aud", "sub"]})
            fhir_user = claims.get("fhirUser", "")
            expect(fhir_user in (f"Patient/{a.patient_id}", f"{self.base}/Patient/{a.patient_id}"),
                   f"fhirUser {fhir_user!r}")
            c.detail = f"kid {signing_key.key_id}, fhirUser {fhir_user}"
        with r.check("fhirclient: reads the launch Patient") as c:
            patient = smart.patient
            expect(patient is not None and patient.id == a.patient_id,
                   f"FHIRClient.patient is {patient!r} for Patient/{a.patient_id}")
            c.detail = f"Patient/{patient.id} {smart.human_name(patient.name[0] if patient.name else None)}"
        with r.check("fhirclient: searches the patient's Observations") as c:
            found = Observation.where(struct={"patient": a.patient_id}).perform_resources(smart.server)
            expect(found, "no Observation found")
            subjects = {o.subject.reference for o in found}
            expect(subjects == {f"Patient/{a.patient_id}"}, f"subjects {subjects}")
            c.detail = f"{len(found)} Observation(s)"
        with r.check("patient/ token reading another Patient is refused with 403", fatal=False):
            try:
                Patient.read(a.other_patient_id, smart.server)
                raise Failed(f"Patient/{a.other_patient_id} was read with a token for Patient/{a.patient_id}")
            except FHIRPermissionDeniedException:
                pass
        with r.check("patient/ token searching another patient's Observations finds none", fatal=False) as c:
            try:
                found = Observation.where(struct={"patient": a.other_patient_id}).perform_resources(smart.server)
                expect(not found, f"{len(found)} Observation(s) of Patient/{a.other_patient_id} found")
                c.detail = "empty Bundle"
            except FHIRPermissionDeniedException:
                c.detail = "403"
        old_access, old_refresh = smart.server.auth.access_token, smart.server.auth.refresh_token
        with r.check("fhirclient: refreshes the token (refresh_token grant)") as c:
            expect(smart.reauthorize(), "reauthorize() returned no launch context")
            auth = smart.server.auth
            expect(auth.access_token and auth.access_token != old_access, "no new access token")
            expect(auth.refresh_token and auth.refresh_token != old_refresh, "the refresh token was not rotated")
            patient = Patient.read(a.patient_id, smart.server)
            expect(patient.id == a.patient_id, "read after refresh")
            c.detail = "new access token reads the Patient; refresh token rotated"
        with r.check("a used refresh token is refused (invalid_grant) and ends the grant", fatal=False) as c:
            replay = requests.post(self.config["token_endpoint"], timeout=TIMEOUT, data={
                "grant_type": "refresh_token", "refresh_token": old_refresh, "client_id": a.public_client_id})
            oauth_error(replay, 400, "invalid_grant")
            after = wait_for_status(lambda: bearer_get(f"{self.base}/Patient/{a.patient_id}",
                                                       smart.server.auth.access_token), 401)
            expect(after.status_code == 401,
                   f"the access token from the rotated refresh still answers {after.status_code}")
            newest = requests.post(self.config["token_endpoint"], timeout=TIMEOUT, data={
                "grant_type": "refresh_token", "refresh_token": smart.server.auth.refresh_token,
                "client_id": a.public_client_id})
            oauth_error(newest, 400, "invalid_grant")
            c.detail = "newest access and refresh tokens revoked too"

    # -- requests-oauthlib ------------------------------------------------------------------
    def oauth_session(self):
        return OAuth2Session(self.args.public_client_id, redirect_uri=self.args.redirect_uri,
                             scope=PATIENT_SCOPES.split(), pkce="S256")

    def requests_oauthlib_flow(self):
        r, a = self.report, self.args
        oauth = self.oauth_session()
        with r.check("requests-oauthlib: authorize URL with PKCE S256 and aud") as c:
            url, state = oauth.authorization_url(self.config["authorization_endpoint"], aud=self.base)
            q = query_of(url)
            expect(q.get("code_challenge_method") == "S256" and q.get("code_challenge"), f"no PKCE in {url}")
        with r.check("browser: consent again (already signed in) sends the code back") as c:
            location, steps = self.browser.authorize(url)
            q = query_of(location)
            expect("code" in q and q.get("state") == state, f"redirected to {location}")
            c.detail = " -> ".join(steps)
        with r.check("requests-oauthlib: fetch_token exchanges the code (PKCE S256) and reads the Patient") as c:
            token = oauth.fetch_token(self.config["token_endpoint"], authorization_response=location,
                                      include_client_id=True)
            expect(token.get("patient") == a.patient_id, f"patient {token.get('patient')!r}")
            expect(token.get("refresh_token"), "no refresh_token")
            response = oauth.get(f"{self.base}/Patient/{a.patient_id}", timeout=TIMEOUT)
            expect(response.status_code == 200 and response.json().get("id") == a.patient_id,
                   f"GET Patient answered {response.status_code}")
            c.detail = f"token_type {token.get('token_type')}, expires_in {token.get('expires_in')}"
        with r.check("requests-oauthlib: refresh_token grant gives a working token") as c:
            before = oauth.token
            token = oauth.refresh_token(self.config["token_endpoint"], client_id=a.public_client_id)
            expect(token["access_token"] != before["access_token"], "same access token")
            response = oauth.get(f"{self.base}/Observation", params={"patient": a.patient_id}, timeout=TIMEOUT)
            expect(response.status_code == 200, f"search answered {response.status_code}")
            entries = response.json().get("entry", [])
            expect(entries, "no Observation in the search")
            c.detail = f"{len(entries)} Observation(s) with the refreshed token"
        with r.check("a reused authorization code is refused (invalid_grant)") as c:
            replay = requests.post(self.config["token_endpoint"], timeout=TIMEOUT, data={
                "grant_type": "authorization_code", "code": q["code"], "redirect_uri": a.redirect_uri,
                "client_id": a.public_client_id,
                # requests-oauthlib keeps the verifier it generated here
                "code_verifier": oauth._code_verifier})
            c.detail = oauth_error(replay, 400, "invalid_grant")
        with r.check("reusing the code revokes the tokens it issued (RFC 6749 §4.1.2)", fatal=False):
            after = wait_for_status(lambda: oauth.get(f"{self.base}/Patient/{a.patient_id}", timeout=TIMEOUT), 401)
            expect(after.status_code == 401, f"the code's (refreshed) access token still answers {after.status_code}")

    def bad_verifier(self):
        r, a = self.report, self.args
        oauth = self.oauth_session()
        url, state = oauth.authorization_url(self.config["authorization_endpoint"], aud=self.base)
        with r.check("browser: a third authorization for the bad-verifier check") as c:
            location, steps = self.browser.authorize(url)
            code = query_of(location).get("code")
            expect(code, f"redirected to {location}")
        with r.check("a wrong PKCE code_verifier is refused (invalid_grant)") as c:
            wrong = secrets.token_urlsafe(48)
            expect(wrong != oauth._code_verifier, "collision")
            response = requests.post(self.config["token_endpoint"], timeout=TIMEOUT, data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": a.redirect_uri,
                "client_id": a.public_client_id, "code_verifier": wrong})
            c.detail = oauth_error(response, 400, "invalid_grant")
        with r.check("a code_verifier left out is refused", fatal=False) as c:
            # Another code (the one above may already be spent), no verifier at all.
            oauth = self.oauth_session()
            url, _ = oauth.authorization_url(self.config["authorization_endpoint"], aud=self.base)
            location, _ = self.browser.authorize(url)
            response = requests.post(self.config["token_endpoint"], timeout=TIMEOUT, data={
                "grant_type": "authorization_code", "code": query_of(location)["code"],
                "redirect_uri": a.redirect_uri, "client_id": a.public_client_id})
            expect(response.status_code == 400 and response.json().get("error") in ("invalid_grant", "invalid_request"),
                   f"HTTP {response.status_code} {response.text[:200]}")
            c.detail = response.json().get("error")

    def authorize_refusals(self):
        r, a = self.report, self.args
        with r.check("a wrong aud is sent back to the app as error=invalid_request") as c:
            oauth = self.oauth_session()
            url, state = oauth.authorization_url(self.config["authorization_endpoint"],
                                                 aud="https://fhir.elsewhere.example/fhir")
            response = self.browser.first_hop(url)
            expect(response.is_redirect, f"HTTP {response.status_code}, not a redirect")
            location = urllib.parse.urljoin(response.url, response.headers["Location"])
            q = query_of(location)
            expect(location.startswith(a.redirect_uri + "?"), f"redirected to {location}")
            expect(q.get("error") == "invalid_request" and q.get("state") == state and "code" not in q,
                   f"redirected to {location}")
            c.detail = f"{response.status_code}, {q.get('error_description', '')}"
        with r.check("an authorize request without PKCE is sent back as error=invalid_request", fatal=False):
            plain = OAuth2Session(a.public_client_id, redirect_uri=a.redirect_uri, scope=PATIENT_SCOPES.split())
            url, state = plain.authorization_url(self.config["authorization_endpoint"], aud=self.base)
            response = self.browser.first_hop(url)
            expect(response.is_redirect, f"HTTP {response.status_code}, not a redirect")
            q = query_of(response.headers["Location"])
            expect(q.get("error") == "invalid_request" and q.get("state") == state, f"redirected with {q}")
        with r.check("an unregistered redirect_uri is shown an error page, never redirected", fatal=False) as c:
            evil = OAuth2Session(a.public_client_id, redirect_uri="http://127.0.0.1:9/elsewhere",
                                 scope=PATIENT_SCOPES.split(), pkce="S256")
            url, _ = evil.authorization_url(self.config["authorization_endpoint"], aud=self.base)
            response = self.browser.first_hop(url)
            expect(not response.is_redirect and response.status_code == 400,
                   f"HTTP {response.status_code} Location {response.headers.get('Location')}")
            c.detail = f"HTTP {response.status_code}"

    # -- backend services -------------------------------------------------------------------
    def backend(self, client_id, key_path):
        r, a = self.report, self.args
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        jwk = public_jwk(key)
        alg, kid = jwk["alg"], jwk["kid"]
        token_url = self.config["token_endpoint"]

        def assertion():
            now = int(time.time())
            return jwt.encode({"iss": client_id, "sub": client_id, "aud": token_url,
                               "jti": secrets.token_urlsafe(24), "iat": now, "exp": now + 300},
                              key, algorithm=alg, headers={"kid": kid, "typ": "JWT"})

        first = assertion()
        smart = fhir_client.FHIRClient(settings={"app_id": client_id, "api_base": self.base,
                                                 "scope": "system/*.rs", "jwt_token": first},
                                       save_func=lambda state: None)
        smart.wants_patient = False  # else fhirclient asks for launch/patient too
        with r.check(f"backend ({alg}): client_credentials with a PyJWT client assertion, through fhirclient") as c:
            smart.prepare()
            smart.authorize()
            ctx = smart.launch_context or {}
            expect(smart.server.auth.access_token, "no access token")
            expect("system/*.rs" in str(ctx.get("scope", "")).split(), f"scope {ctx.get('scope')!r}")
            # fhirclient turns the (required) expires_in into expires_at
            expect(smart.server.auth.expires_at is not None, "no expires_in")
            c.detail = f"kid {kid[:12]}…, scope '{ctx.get('scope')}', token_type {ctx.get('token_type')}"
        with r.check(f"backend ({alg}): system/ token reads both Patients and searches Observations") as c:
            for pid in (a.patient_id, a.other_patient_id):
                expect(Patient.read(pid, smart.server).id == pid, f"read Patient/{pid}")
            found = Observation.where(struct={"patient": a.other_patient_id}).perform_resources(smart.server)
            expect(found, f"no Observation of Patient/{a.other_patient_id}")
            c.detail = f"{len(found)} Observation(s) of Patient/{a.other_patient_id}"
        with r.check(f"backend ({alg}): system/*.rs token cannot create (403)", fatal=False):
            try:
                Patient({"resourceType": "Patient", "name": [{"family": "Nobody"}]}).create(smart.server)
                raise Failed("a Patient was created with system/*.rs")
            except FHIRPermissionDeniedException:
                pass
        with r.check(f"backend ({alg}): replaying the same client assertion is refused (401 invalid_client)") as c:
            try:
                smart.authorize()  # the same jwt_token again
                raise Failed("a second token was issued for the same assertion (jti)")
            except FHIRUnauthorizedException as err:
                c.detail = oauth_error(err.response, 401, "invalid_client")
        with r.check(f"backend ({alg}): a fresh assertion works again", fatal=False):
            smart.server.auth.jwt_token = assertion()
            smart.authorize()
            expect(Patient.read(a.patient_id, smart.server).id == a.patient_id, "read")

    def all(self):
        flows = [("discovery", self.discovery)]
        flows.append(("fhirclient standalone launch", self.fhirclient_standalone))
        flows.append(("requests-oauthlib standalone launch", self.requests_oauthlib_flow))
        flows.append(("bad PKCE verifier", self.bad_verifier))
        flows.append(("authorize refusals", self.authorize_refusals))
        for spec in self.args.backend:
            client_id, _, key_path = spec.partition(":")
            flows.append((f"backend service {client_id}", lambda c=client_id, k=key_path: self.backend(c, k)))
        for name, flow in flows:
            try:
                flow()
            except Abort as stop:
                self.report.not_run(name, stop.args[0])
                if name == "discovery":
                    break
        failed = len(self.report.failed)
        print(f"{self.report.passed} passed, {failed} failed")
        return 1 if failed else 0


def main():
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keygen", choices=["RS384", "ES384"], help="write a key pair and exit")
    p.add_argument("--key-out")
    p.add_argument("--jwks-out")
    p.add_argument("--base", default=env("KILN_BASE_URL"), help="FHIR base URL, e.g. http://127.0.0.1:8080/fhir")
    p.add_argument("--public-client-id", default=env("KILN_PUBLIC_CLIENT_ID"))
    p.add_argument("--redirect-uri", default=env("KILN_REDIRECT_URI", "http://127.0.0.1:9/callback"))
    p.add_argument("--username", default=env("KILN_PATIENT_USERNAME"))
    p.add_argument("--password", default=env("KILN_PATIENT_PASSWORD"), help="or KILN_PATIENT_PASSWORD")
    p.add_argument("--patient-id", default=env("KILN_PATIENT_ID"), help="the patient user's Patient")
    p.add_argument("--other-patient-id", default=env("KILN_OTHER_PATIENT_ID"))
    p.add_argument("--backend", action="append", default=[], metavar="CLIENT_ID:KEY.pem",
                   help="a confidential-asymmetric app and its private key (RSA: RS384, EC P-384: ES384)")
    args = p.parse_args()
    if args.keygen:
        if not (args.key_out and args.jwks_out):
            p.error("--keygen needs --key-out and --jwks-out")
        keygen(args.keygen, args.key_out, args.jwks_out)
        return 0
    missing = [name for name in ("base", "public_client_id", "username", "password", "patient_id",
                                 "other_patient_id") if not getattr(args, name)]
    if missing:
        p.error("missing: " + ", ".join("--" + m.replace("_", "-") for m in missing))
    return Run(args).all()


if __name__ == "__main__":
    sys.exit(main())
