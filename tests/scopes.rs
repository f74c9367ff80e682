//! Required scopes, allowed clients and role mappings over real sockets: each setting, each
//! 403 and its challenge, the order of the checks, and the settings' configuration mistakes.

use serde_json::{Value, json};

use crate::support::process::{Output, ServeProcess};
use crate::support::{
    RawResponse, TestEnv, access_events, client, env_for, run_binary, send_bearer, start_issuer,
    start_stub,
};

const BEARER: &str = "Authentication__Schemes__Bearer__";

fn setting(name: &str) -> String {
    format!("{BEARER}{name}")
}

/// `claims` edited by `edit`, signed.
fn token_with(env: &TestEnv, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = env.claims();
    edit(&mut claims);
    env.issuer.sign(&claims)
}

/// The test claims with `edits`' members set (and `remove` dropped first), signed.
fn token_merging(env: &TestEnv, remove: &[&str], edits: &Value) -> String {
    token_with(env, |c| {
        for name in remove {
            c.as_object_mut().expect("object").remove(*name);
        }
        for (k, v) in edits.as_object().expect("object") {
            c[k] = v.clone();
        }
    })
}

async fn call(env: &TestEnv, method: &str, path: &str, token: &str) -> RawResponse {
    env.raw(
        method,
        path,
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await
}

fn www_authenticate(response: &RawResponse) -> String {
    response
        .headers
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Asserts a 403 with this JSON error; returns the challenge.
fn forbidden(response: &RawResponse, error: &str, case: &str) -> String {
    assert_eq!(response.status, 403, "{case}");
    assert_eq!(response.json()["error"], error, "{case}");
    let description = response.json()["error_description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!description.is_empty(), "{case}: a description");
    let challenge = www_authenticate(response);
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_scope\""),
        "{case}: {challenge}"
    );
    assert!(
        challenge.ends_with(&format!("error_description=\"{description}\"")),
        "{case}: {challenge}"
    );
    challenge
}

#[tokio::test]
async fn required_scopes_read_scp_as_array_or_string_and_fall_back_to_scope() {
    let env = TestEnv::with_settings(&[(&setting("RequiredScopes__0"), "halo.api")]).await;
    let accepted: [(&str, Value); 4] = [
        ("scp array", json!({"scp": ["halo.admin", "halo.api"]})),
        ("scp string", json!({"scp": "halo.admin halo.api"})),
        ("scope fallback", json!({"scope": "halo.api"})),
        (
            "scp wins over scope",
            json!({"scp": ["halo.api"], "scope": "other"}),
        ),
    ];
    for (case, scopes) in accepted {
        let token = token_merging(&env, &["scp"], &scopes);
        let response = call(&env, "GET", "/api/v1/policies", &token).await;
        assert_eq!(response.status, 200, "{case}");
    }
    let refused: [(&str, Value); 8] = [
        ("upper case", json!({"scp": ["HALO.API"]})),
        ("longer", json!({"scp": ["halo.apix"]})),
        ("prefix", json!({"scp": "halo.ap"})),
        ("no scopes", json!({})),
        ("empty array", json!({"scp": []})),
        (
            "non-string elements",
            json!({"scp": [7, ["halo.api"], {"halo.api": true}, null]}),
        ),
        (
            "scp present wins",
            json!({"scp": ["x"], "scope": "halo.api"}),
        ),
        (
            "scp of a wrong type",
            json!({"scp": 1, "scope": "halo.api"}),
        ),
    ];
    for (case, scopes) in refused {
        let token = token_merging(&env, &["scp"], &scopes);
        let response = call(&env, "GET", "/api/v1/policies", &token).await;
        let challenge = forbidden(&response, "insufficient_scope", case);
        assert!(
            challenge.contains("scope=\"halo.api\""),
            "{case}: {challenge}"
        );
    }
    assert_eq!(
        env.upstream.requests().len(),
        4,
        "no refused request reached Halo"
    );
    let health = env.raw("GET", "/api/health", &[]).await;
    assert_eq!(health.status, 200, "anonymous routes need no scope");
}

#[tokio::test]
async fn a_configured_scope_claim_is_the_only_one_read() {
    let env = TestEnv::with_settings(&[
        (&setting("RequiredScopes__0"), "halo.api"),
        (&setting("ScopeClaim"), "scope"),
    ])
    .await;
    let scp_only = env.token(None);
    let response = call(&env, "GET", "/api/v1/policies", &scp_only).await;
    forbidden(&response, "insufficient_scope", "scp is not read");
    let scope = token_with(&env, |c| c["scope"] = json!("halo.api"));
    assert_eq!(
        call(&env, "GET", "/api/v1/policies", &scope).await.status,
        200
    );
}

#[tokio::test]
async fn rule_scopes_add_to_the_global_ones_and_the_challenge_names_them_all() {
    let env = TestEnv::with_settings(&[
        (&setting("RequiredScopes__0"), "halo.api"),
        ("Gateway__Rules__0__Path", "/api/v1/license/**"),
        ("Gateway__Rules__0__Methods", "POST"),
        ("Gateway__Rules__0__Role", "Admin"),
        // A single value is a list of one.
        ("Gateway__Rules__0__Scopes", "halo.admin"),
        ("Gateway__Rules__1__Path", "/api/health"),
        ("Gateway__Rules__1__Role", "Anonymous"),
    ])
    .await;
    let api_only = token_with(&env, |c| c["role"] = json!("Admin"));
    let response = call(&env, "POST", "/api/v1/license", &api_only).await;
    let challenge = forbidden(&response, "insufficient_scope", "rule scope missing");
    assert!(
        challenge.contains("scope=\"halo.api halo.admin\""),
        "every scope the route needs: {challenge}"
    );
    let description = response.json()["error_description"].to_string();
    assert!(
        description.contains("halo.admin") && !description.contains("halo.api"),
        "the description names what is missing: {description}"
    );
    let admin_only = token_with(&env, |c| {
        c["role"] = json!("Admin");
        c["scp"] = json!(["halo.admin"]);
    });
    let response = call(&env, "POST", "/api/v1/license", &admin_only).await;
    forbidden(&response, "insufficient_scope", "global scope missing");
    let both = token_with(&env, |c| {
        c["role"] = json!("Admin");
        c["scp"] = json!(["halo.admin", "halo.api"]);
    });
    assert_eq!(
        call(&env, "POST", "/api/v1/license", &both).await.status,
        201
    );
    // Routes no rule matches still need the global scope.
    assert_eq!(
        call(&env, "GET", "/api/v1/policies", &api_only)
            .await
            .status,
        200
    );
    let response = call(&env, "GET", "/api/v1/policies", &admin_only).await;
    forbidden(&response, "insufficient_scope", "fallback route");
    assert_eq!(env.raw("GET", "/api/health", &[]).await.status, 200);
}

#[tokio::test]
async fn allowed_clients_global_and_per_rule_must_both_hold() {
    let env = TestEnv::with_settings(&[
        (&setting("AllowedClients__0"), "app-a"),
        (&setting("AllowedClients__1"), "app-b"),
        ("Gateway__Rules__0__Path", "/api/v1/policies/**"),
        ("Gateway__Rules__0__Clients__0", "app-b"),
        ("Gateway__Rules__0__Clients__1", "app-c"),
        ("Gateway__Rules__1__Path", "/api/v1/license/**"),
    ])
    .await;
    let client = |id: Option<&str>, claim: &str| {
        token_with(&env, |c| {
            c.as_object_mut().expect("object").remove("cid");
            if let Some(id) = id {
                c[claim] = json!(id);
            }
        })
    };
    let cases: [(&str, String, u16, u16); 6] = [
        ("in both lists", client(Some("app-b"), "cid"), 200, 200),
        ("global list only", client(Some("app-a"), "cid"), 403, 200),
        ("rule list only", client(Some("app-c"), "cid"), 403, 403),
        ("neither", client(Some("app-z"), "cid"), 403, 403),
        ("case differs", client(Some("APP-B"), "cid"), 403, 403),
        (
            "client_id fallback",
            client(Some("app-a"), "client_id"),
            403,
            200,
        ),
    ];
    for (case, token, on_rule, elsewhere) in cases {
        let response = call(&env, "GET", "/api/v1/policies", &token).await;
        assert_eq!(response.status, on_rule, "{case} on the rule");
        if on_rule == 403 {
            let challenge = forbidden(&response, "ClientNotAllowed", case);
            assert!(
                !challenge.contains("scope="),
                "no scope= for a client: {challenge}"
            );
        }
        let response = call(&env, "GET", "/api/v1/license", &token).await;
        assert_eq!(response.status, elsewhere, "{case} elsewhere");
    }
    let anonymous_client = client(None, "cid");
    let response = call(&env, "GET", "/api/v1/license", &anonymous_client).await;
    forbidden(&response, "ClientNotAllowed", "no client id is not allowed");
}

#[tokio::test]
async fn a_configured_client_id_claim_is_the_only_one_read() {
    let env = TestEnv::with_settings(&[
        (&setting("AllowedClients__0"), "app-a"),
        (&setting("ClientIdClaim"), "azp"),
    ])
    .await;
    let cid = token_with(&env, |c| c["cid"] = json!("app-a"));
    let response = call(&env, "GET", "/api/v1/policies", &cid).await;
    forbidden(&response, "ClientNotAllowed", "cid is not read");
    let azp = token_with(&env, |c| c["azp"] = json!("app-a"));
    assert_eq!(
        call(&env, "GET", "/api/v1/policies", &azp).await.status,
        200
    );
}

#[tokio::test]
async fn checks_run_client_then_scope_then_role() {
    let env = TestEnv::with_settings(&[
        (&setting("AllowedClients__0"), "app-a"),
        (&setting("RequiredScopes__0"), "halo.api"),
    ])
    .await;
    let steps: [(&str, Value, Option<&str>); 4] = [
        (
            "all three fail",
            json!({"cid": "app-z", "scp": []}),
            Some("ClientNotAllowed"),
        ),
        (
            "scope and role fail",
            json!({"cid": "app-a", "scp": []}),
            Some("insufficient_scope"),
        ),
        (
            "role fails",
            json!({"cid": "app-a", "scp": ["halo.api"]}),
            Some("AdminRoleMissing"),
        ),
        (
            "all pass",
            json!({"cid": "app-a", "scp": ["halo.api"], "role": "Admin"}),
            None,
        ),
    ];
    for (case, edits, error) in steps {
        let token = token_merging(&env, &[], &edits);
        let response = call(&env, "POST", "/api/v1/license", &token).await;
        match error {
            Some(error) => {
                forbidden(&response, error, case);
            }
            None => assert_eq!(response.status, 201, "{case}"),
        }
    }
}

#[tokio::test]
async fn role_mappings_grant_roles_from_groups_scopes_and_client_ids() {
    let env = TestEnv::with_settings(&[
        (&setting("RoleMappings__0__Claim"), "groups"),
        (&setting("RoleMappings__0__Value"), "Halo Admins"),
        (&setting("RoleMappings__0__Role"), "Admin"),
        (&setting("RoleMappings__1__Claim"), "scp"),
        (&setting("RoleMappings__1__Value"), "halo.admin"),
        (&setting("RoleMappings__1__Role"), "Admin"),
        (&setting("RoleMappings__2__Claim"), "cid"),
        (&setting("RoleMappings__2__Value"), "0oa-ops"),
        (&setting("RoleMappings__2__Role"), "Admin"),
    ])
    .await;
    let cases: [(&str, Value, u16); 11] = [
        (
            "group in array",
            json!({"groups": ["Everyone", "Halo Admins"]}),
            201,
        ),
        ("group as string", json!({"groups": "Halo Admins"}), 201),
        (
            "scope in scp array",
            json!({"scp": ["halo.api", "halo.admin"]}),
            201,
        ),
        (
            "scope in scp string",
            json!({"scp": "halo.api halo.admin"}),
            201,
        ),
        ("client id", json!({"cid": "0oa-ops"}), 201),
        (
            "group case differs",
            json!({"groups": ["halo admins"]}),
            403,
        ),
        (
            "group substring",
            json!({"groups": ["Halo Admins Team"]}),
            403,
        ),
        (
            "group not a string",
            json!({"groups": [["Halo Admins"], {"name": "Halo Admins"}]}),
            403,
        ),
        ("scope case differs", json!({"scp": ["HALO.ADMIN"]}), 403),
        ("client id case differs", json!({"cid": "0OA-OPS"}), 403),
        ("nothing matches", json!({"groups": ["Everyone"]}), 403),
    ];
    for (case, edits, status) in cases {
        let token = token_merging(&env, &[], &edits);
        let response = call(&env, "POST", "/api/v1/license", &token).await;
        assert_eq!(response.status, status, "{case}");
        if status == 403 {
            forbidden(&response, "AdminRoleMissing", case);
        }
    }
}

#[tokio::test]
async fn other_roles_answer_role_missing_and_each_reason_is_counted() {
    let env = TestEnv::with_settings(&[
        (&setting("AllowedClients__0"), "0oa-test-client"),
        ("Gateway__Rules__0__Path", "/api/v1/policies/**"),
        ("Gateway__Rules__0__Role", "Ops"),
        ("Gateway__Rules__0__Scopes__0", "halo.ops"),
        ("Gateway__Rules__1__Path", "/api/v1/license/**"),
        ("Gateway__Rules__1__Role", "Admin"),
    ])
    .await;
    let scoped = token_with(&env, |c| c["scp"] = json!(["halo.api", "halo.ops"]));
    let response = call(&env, "GET", "/api/v1/policies", &scoped).await;
    forbidden(&response, "RoleMissing", "Ops");
    let response = call(&env, "POST", "/api/v1/license", &scoped).await;
    forbidden(&response, "AdminRoleMissing", "Admin");
    let response = call(&env, "GET", "/api/v1/policies", &env.token(Some("Ops"))).await;
    forbidden(&response, "insufficient_scope", "halo.ops");
    let stranger = token_with(&env, |c| c["cid"] = json!("0oa-other"));
    let response = call(&env, "GET", "/api/v1/policies", &stranger).await;
    forbidden(&response, "ClientNotAllowed", "other client");
    let metrics = env.scrape_metrics().await;
    for reason in [
        "role_missing",
        "admin_role_missing",
        "insufficient_scope",
        "client_not_allowed",
    ] {
        let series =
            format!("halo_gateway_auth_decisions_total{{decision=\"deny\",reason=\"{reason}\"}} 1");
        assert!(metrics.contains(&series), "{series}:\n{metrics}");
    }
}

#[tokio::test]
async fn a_custom_groups_claim_is_honoured_by_serve_and_explain() {
    let mapping = [
        (setting("RoleMappings__0__Claim"), "halo_groups"),
        (setting("RoleMappings__0__Value"), "Halo Admins"),
        (setting("RoleMappings__0__Role"), "Admin"),
    ];
    let settings: Vec<(&str, &str)> = mapping.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let env = TestEnv::with_settings(&settings).await;
    let custom = token_with(&env, |c| c["halo_groups"] = json!(["Halo Admins"]));
    let plain = token_with(&env, |c| c["groups"] = json!(["Halo Admins"]));
    assert_eq!(
        call(&env, "POST", "/api/v1/license", &custom).await.status,
        201
    );
    let response = call(&env, "POST", "/api/v1/license", &plain).await;
    forbidden(
        &response,
        "AdminRoleMissing",
        "groups is not the configured claim",
    );

    let vars = env_for(env.issuer.url(), "http://127.0.0.1:9", &settings);
    let explain = |token: String| {
        let vars = vars.clone();
        async move {
            run_binary(
                &["explain", "--route", "POST", "/api/v1/license", &token],
                vars,
            )
            .await
        }
    };
    let (code, out) = explain(custom).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "role Admin: granted by Authentication__Schemes__Bearer__RoleMappings__0 (claim 'halo_groups' holds 'Halo Admins')"
        ),
        "{out}"
    );
    assert!(out.contains("[pass] role: Admin granted"), "{out}");
    let (code, out) = explain(plain).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[FAIL] role"), "{out}");
    assert!(out.contains("AdminRoleMissing"), "{out}");
}

#[tokio::test]
async fn explain_shows_client_scope_and_role_checks_with_granted_and_missing_scopes() {
    let issuer = start_issuer().await;
    let settings = [
        (setting("RequiredScopes__0"), "halo.api"),
        (setting("AllowedClients__0"), "app-a"),
        ("Gateway__Rules__0__Path".to_owned(), "/api/v1/license/**"),
        ("Gateway__Rules__0__Role".to_owned(), "Admin"),
        ("Gateway__Rules__0__Scopes__0".to_owned(), "halo.admin"),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let vars = env_for(issuer.url(), "http://127.0.0.1:9", &settings);
    let mut claims = issuer.claims_for(&issuer.clients()[1], &["halo.api"]);
    claims["cid"] = json!("app-z");
    let token = issuer.sign(&claims);
    let (code, out) = run_binary(
        &["explain", "--route", "POST", "/api/v1/license", &token],
        vars.clone(),
    )
    .await;
    assert_eq!(code, 1, "{out}");
    for phrase in [
        "[info] client id: 'app-z' (claim 'cid')",
        "[info] scopes granted: halo.api (claim 'scp')",
        "[info] role User: granted by DefaultRole",
        "[FAIL] client: the client 'app-z' is not allowed",
        "[FAIL] scopes: route needs halo.api halo.admin; missing halo.admin",
        "[FAIL] role: this route needs the 'Admin' role",
        "verdict: REJECTED with 403 ClientNotAllowed",
    ] {
        assert!(out.contains(phrase), "{phrase}:\n{out}");
    }
    claims["cid"] = json!("app-a");
    claims["scp"] = json!(["halo.api", "halo.admin"]);
    claims["role"] = json!("Admin");
    let (code, out) = run_binary(
        &[
            "explain",
            "--route",
            "POST",
            "/api/v1/license",
            &issuer.sign(&claims),
        ],
        vars,
    )
    .await;
    assert_eq!(code, 0, "{out}");
    for phrase in [
        "[pass] client: 'app-a' (claim 'cid') is allowed",
        "[pass] scopes: route needs halo.api halo.admin; all granted",
        "[info] role Admin: granted by the role claim 'role'",
        "[pass] role: Admin granted",
        "verdict: ACCEPTED",
    ] {
        assert!(out.contains(phrase), "{phrase}:\n{out}");
    }
}

#[tokio::test]
async fn check_config_prints_the_scopes_clients_and_mappings_in_effect() {
    let issuer = start_issuer().await;
    let settings = [
        (setting("RequiredScopes__0"), "halo.api"),
        (setting("AllowedClients__0"), "app-a"),
        (setting("RoleMappings__0__Claim"), "groups"),
        (setting("RoleMappings__0__Value"), "Halo Admins"),
        (setting("RoleMappings__0__Role"), "Admin"),
        ("Gateway__Rules__0__Path".to_owned(), "/api/v1/license/**"),
        ("Gateway__Rules__0__Role".to_owned(), "Admin"),
        ("Gateway__Rules__0__Scopes".to_owned(), "halo.admin"),
        ("Gateway__Rules__0__Clients".to_owned(), "app-a"),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let (code, out) = run_binary(
        &["check-config"],
        env_for(issuer.url(), "http://halo", &settings),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    for line in [
        "# Authentication__Schemes__Bearer__ScopeClaim not set: scp, else scope",
        "# Authentication__Schemes__Bearer__ClientIdClaim not set: cid, else client_id",
        "\nAuthentication__Schemes__Bearer__RequiredScopes__0 = halo.api\n",
        "\nAuthentication__Schemes__Bearer__AllowedClients__0 = app-a\n",
        "\nAuthentication__Schemes__Bearer__RoleMappings__0__Claim = groups\n",
        "\nAuthentication__Schemes__Bearer__RoleMappings__0__Value = Halo Admins\n",
        "\nAuthentication__Schemes__Bearer__RoleMappings__0__Role = Admin\n",
        "\nGateway__Rules__0__Scopes__0 = halo.admin\n",
        "\nGateway__Rules__0__Clients__0 = app-a\n",
    ] {
        assert!(out.contains(line), "{line}:\n{out}");
    }
    assert!(!out.contains("AllowedClients not set"), "{out}");

    // Set claim names are printed as settings, without the notes on the defaults.
    let named = [
        (setting("ScopeClaim"), "scope"),
        (setting("ClientIdClaim"), "azp"),
    ];
    let named: Vec<(&str, &str)> = named.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let (code, out) = run_binary(
        &["check-config"],
        env_for(issuer.url(), "http://halo", &named),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("\nAuthentication__Schemes__Bearer__ScopeClaim = scope\n"),
        "{out}"
    );
    assert!(
        out.contains("\nAuthentication__Schemes__Bearer__ClientIdClaim = azp\n"),
        "{out}"
    );
    assert!(
        !out.contains("not set: scp") && !out.contains("not set: cid"),
        "{out}"
    );
    assert!(out.contains("AllowedClients not set: any client"), "{out}");
}

/// As for every setting, an empty value is not set (Helm renders unset values as `""`): an
/// empty scope or client id adds no requirement rather than failing start-up.
#[tokio::test]
async fn an_empty_scope_or_client_id_fails_naming_the_setting() {
    let issuer = start_issuer().await;
    for (name, value) in [
        (setting("RequiredScopes__0"), ""),
        (setting("AllowedClients__0"), " "),
        ("Gateway__Rules__0__Clients__1".to_owned(), ""),
        ("Gateway__Rules__0__Scopes__0".to_owned(), ""),
    ] {
        let settings = [
            ("Gateway__Rules__0__Path", "/api/**"),
            ("Gateway__Rules__0__Clients__0", "app-a"),
            (name.as_str(), value),
        ];
        let (code, out) = run_binary(
            &["check-config"],
            env_for(issuer.url(), "http://halo", &settings),
        )
        .await;
        assert_eq!(code, 2, "{name}: {out}");
        assert!(out.contains(&name), "{name}: {out}");
    }
}

#[tokio::test]
async fn configuration_mistakes_fail_check_config_and_serve_naming_the_setting() {
    let mistakes: [(&[(&str, &str)], &str); 10] = [
        (
            &[(
                "Authentication__Schemes__Bearer__RequiredScopes__0",
                "halo.api halo.admin",
            )],
            "Authentication__Schemes__Bearer__RequiredScopes__0",
        ),
        (
            &[
                (
                    "Authentication__Schemes__Bearer__RequiredScopes__0",
                    "halo.api",
                ),
                (
                    "Authentication__Schemes__Bearer__RequiredScopes__1",
                    "halo\"x",
                ),
            ],
            "Authentication__Schemes__Bearer__RequiredScopes__1",
        ),
        (
            &[("Authentication__Schemes__Bearer__RequiredScopes__0", "a\\b")],
            "Authentication__Schemes__Bearer__RequiredScopes__0",
        ),
        (
            &[(
                "Authentication__Schemes__Bearer__RequiredScopes__0",
                "a\u{7f}",
            )],
            "Authentication__Schemes__Bearer__RequiredScopes__0",
        ),
        (
            &[(
                "Authentication__Schemes__Bearer__RequiredScopes__0",
                "halo.äpi",
            )],
            "Authentication__Schemes__Bearer__RequiredScopes__0",
        ),
        (
            &[(
                "Authentication__Schemes__Bearer__RequiredScopes__0",
                "a\u{1}b",
            )],
            "Authentication__Schemes__Bearer__RequiredScopes__0",
        ),
        (
            &[
                ("Gateway__Rules__0__Path", "/api/**"),
                ("Gateway__Rules__0__Scopes__0", "a\tb"),
            ],
            "Gateway__Rules__0__Scopes__0",
        ),
        (
            &[
                (
                    "Authentication__Schemes__Bearer__RoleMappings__0__Value",
                    "x",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__0__Role",
                    "Admin",
                ),
            ],
            "Authentication__Schemes__Bearer__RoleMappings__0__Claim",
        ),
        (
            &[
                (
                    "Authentication__Schemes__Bearer__RoleMappings__0__Claim",
                    "groups",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__0__Role",
                    "Admin",
                ),
            ],
            "Authentication__Schemes__Bearer__RoleMappings__0__Value",
        ),
        (
            &[
                (
                    "Authentication__Schemes__Bearer__RoleMappings__0__Claim",
                    "groups",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__0__Value",
                    "a",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__0__Role",
                    "Admin",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__1__Claim",
                    "groups",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__1__Value",
                    "b",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__2__Claim",
                    "groups",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__2__Value",
                    "c",
                ),
                (
                    "Authentication__Schemes__Bearer__RoleMappings__2__Role",
                    "Admin",
                ),
            ],
            "Authentication__Schemes__Bearer__RoleMappings__1__Role",
        ),
    ];
    for (settings, named) in mistakes {
        let vars = env_for(
            "https://okta.example/oauth2/default",
            "http://halo",
            settings,
        );
        for command in ["check-config", "serve"] {
            let (code, out) = run_binary(&[command], vars.clone()).await;
            assert_eq!(code, 2, "{command} {settings:?}: {out}");
            assert!(
                out.lines().count() == 1 && out.contains(&format!("{named}:"))
                    || out.contains(&format!("{named} is required")),
                "{command} names {named}: {out}"
            );
        }
    }
}

#[tokio::test]
async fn the_access_log_names_reason_client_missing_scopes_and_granting_mapping() {
    let issuer = start_issuer().await;
    let upstream = start_stub().await;
    let settings = [
        (setting("RequiredScopes__0"), "halo.api"),
        (setting("AllowedClients__0"), "app-a"),
        (setting("RoleMappings__0__Claim"), "groups"),
        (setting("RoleMappings__0__Value"), "Halo Admins"),
        (setting("RoleMappings__0__Role"), "Admin"),
        ("Gateway__LogFormat".to_owned(), "json"),
    ];
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let vars = env_for(issuer.url(), &upstream.url(), &settings);
    let gateway = ServeProcess::start(vars, Output::Captured).await;
    let http = client();
    let mut claims = issuer.claims_for(&issuer.clients()[1], &["halo.api"]);
    claims["cid"] = json!("app-a");
    claims["groups"] = json!(["Halo Admins"]);
    let mapped = issuer.sign(&claims);
    claims["scp"] = json!(["halo.admin"]);
    let unscoped = issuer.sign(&claims);
    claims["cid"] = json!("app-z");
    let stranger = issuer.sign(&claims);
    let url = format!("{}/api/v1/license", gateway.base);
    for (token, status) in [(&mapped, 201), (&unscoped, 403), (&stranger, 403)] {
        let response = send_bearer(&http, reqwest::Method::POST, &url, token).await;
        assert_eq!(response.status(), status);
    }
    let output = gateway.stop().await;
    let access = access_events(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(access.len(), 3, "{access:?}");
    assert_eq!(access[0]["client_id"], "app-a");
    assert_eq!(access[0]["granted_by"], "Admin=RoleMappings__0");
    assert_eq!(access[0]["role"], "Admin");
    assert_eq!(access[1]["deny_reason"], "insufficient_scope");
    assert_eq!(access[1]["client_id"], "app-a");
    assert_eq!(access[1]["missing_scopes"], "halo.api");
    assert_eq!(access[2]["deny_reason"], "client_not_allowed");
    assert_eq!(access[2]["client_id"], "app-z");
    assert!(access[2].get("missing_scopes").is_none(), "{}", access[2]);
}
