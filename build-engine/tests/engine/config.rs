use kiln_build_engine::{ConfigChange, ImageConfig};

#[test]
fn unknown_fields_of_a_base_config_survive() {
    let base = br#"{"architecture":"amd64","os":"linux","config":{"Env":["A=1"],"Custom":"kept","Healthcheck":{"Test":["CMD","x"],"Retries":3}},"rootfs":{"type":"layers","diff_ids":[]},"x-extra":{"k":1}}"#;
    let (mut c, _) = ImageConfig::from_base(base).unwrap();
    c.apply(ConfigChange::Env(vec![("B".into(), "2".into())]));
    let v = c.as_json();
    assert_eq!(v["config"]["Custom"], "kept");
    assert_eq!(v["config"]["Healthcheck"]["Retries"], 3);
    assert_eq!(v["x-extra"]["k"], 1);
    assert_eq!(
        c.env(),
        vec![("A".to_string(), "1".to_string()), ("B".into(), "2".into())]
    );
}
