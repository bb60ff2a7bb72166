//! `kiln login` / `kiln logout`: credentials checked against the registry,
//! stored in Docker's config.json (base64 `auth`, mode 0600, other keys
//! kept), used by pull and push, and removed again.

use std::os::unix::fs::PermissionsExt;

use base64::Engine;

use crate::support::*;

fn config(env: &Env) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(env.docker_config()).expect("config.json")).expect("json")
}

#[test]
fn login_with_token_auth_stores_uses_and_logout_removes_credentials() {
    let reg = Registry::start(RegistryConfig::token_auth().anonymous_pull(false))
        .expect("start registry");
    let (user, pass) = reg.credentials().expect("credentials");
    let env = Env::new();
    std::fs::write(
        env.docker_config(),
        r#"{"psFormat":"table {{.ID}}","auths":{"other.example:5000":{"auth":"eDp5"}}}"#,
    )
    .unwrap();

    // Wrong password: refused, nothing written.
    let bad = env.kiln_stdin(
        &["login", "-u", user, "--password-stdin", reg.addr()],
        "nope\n",
    );
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad));
    assert!(config(&env)["auths"].get(reg.addr()).is_none());

    let out = env.kiln_stdin(
        &["login", "-u", user, "--password-stdin", reg.addr()],
        &format!("{pass}\n"),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), "Login Succeeded\n");
    let c = config(&env);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    assert_eq!(c["auths"][reg.addr()]["auth"], auth.as_str(), "{c}");
    assert_eq!(c["psFormat"], "table {{.ID}}");
    assert_eq!(c["auths"]["other.example:5000"]["auth"], "eDp5");
    let mode = std::fs::metadata(env.docker_config())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // The stored credentials let push and pull through (anonymous pull is
    // off on this registry).
    let ctx = context("FROM scratch\nCOPY f /f\n", &[("f", "x")]);
    let name = format!("{}/private/img:1", reg.addr());
    env.ok(&[
        "build",
        "--progress=plain",
        "-q",
        "-t",
        &name,
        path_str(ctx.path()),
    ]);
    env.ok(&["push", &name]);
    let other = Env::new();
    let denied = other.kiln(&["pull", &name]);
    assert_eq!(denied.status.code(), Some(125), "{}", text(&denied));
    std::fs::copy(env.docker_config(), other.docker_config()).unwrap();
    other.ok(&["pull", "-q", &name]);

    let out = env.ok(&["logout", reg.addr()]);
    assert_eq!(
        out,
        format!("Removing login credentials for {}\n", reg.addr())
    );
    let c = config(&env);
    assert!(c["auths"].get(reg.addr()).is_none(), "{c}");
    assert_eq!(c["auths"]["other.example:5000"]["auth"], "eDp5");
    assert_eq!(c["psFormat"], "table {{.ID}}");
    let out = env.ok(&["logout", reg.addr()]);
    assert_eq!(out, format!("Not logged in to {}\n", reg.addr()));
}

#[test]
fn login_with_basic_auth_over_tls_and_password_flag() {
    let reg = Registry::start(RegistryConfig::basic_auth()).expect("start registry");
    let (user, pass) = reg.credentials().expect("credentials");
    let mut env = Env::new();
    env.certs = reg.ca_cert_dir();
    let out = env.kiln(&["login", "-u", user, "-p", pass, reg.addr()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out), "Login Succeeded\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--password-stdin"));
    let c = config(&env);
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    assert_eq!(c["auths"][reg.addr()]["auth"], auth.as_str(), "{c}");

    let bad = env.kiln(&["login", "-u", user, "-p", "wrong", reg.addr()]);
    assert_eq!(bad.status.code(), Some(125), "{}", text(&bad));
    // The good entry stays.
    assert_eq!(config(&env)["auths"][reg.addr()]["auth"], auth.as_str());

    // --password-stdin needs a user; no TTY means no prompt.
    let out = env.kiln_stdin(&["login", "--password-stdin", reg.addr()], "x\n");
    assert_eq!(out.status.code(), Some(125), "{}", text(&out));
    env.ok(&["logout", reg.addr()]);
    assert!(config(&env)["auths"].get(reg.addr()).is_none());
}
