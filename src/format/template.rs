//! The subset of Go's text/template that `docker ... --format` users write:
//! `{{.Field}}`, `{{.A.B}}`, `{{.}}`, `{{json .X}}`, `{{join .X ","}}`,
//! `{{upper .X}}`, `{{lower .X}}`, `{{index .X "key"}}`, literal text, and
//! Docker's `\t` / `\n` escapes and `table` prefix (handled by callers).
//! Values are printed as Go prints them (`[a b]`, `map[k:v]`, `<nil>`).

use anyhow::{Context, bail};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Path(Vec<String>),
    Str(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Action {
        func: Option<String>,
        args: Vec<Arg>,
    },
}

/// A parsed template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pieces: Vec<Piece>,
}

fn parse_arg(tok: &str) -> anyhow::Result<Arg> {
    if let Some(s) = tok.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return Ok(Arg::Str(s.to_owned()));
    }
    if tok == "." {
        return Ok(Arg::Path(Vec::new()));
    }
    if let Some(p) = tok.strip_prefix('.') {
        return Ok(Arg::Path(p.split('.').map(str::to_owned).collect()));
    }
    bail!("unexpected {tok:?} in template")
}

fn tokens(s: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        bail!("unterminated quoted string in template");
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

impl Template {
    /// Parses `text` (after Docker's escapes: `\t` and `\n` become tab and
    /// newline).
    pub(crate) fn parse(text: &str) -> anyhow::Result<Template> {
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("{{") {
            let mut lit = rest[..start].to_owned();
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .with_context(|| format!("template: unclosed action in {text:?}"))?;
            let mut inner = &after[..end];
            // `{{-` and `-}}` trim the surrounding white space.
            if let Some(i) = inner.strip_prefix("- ") {
                inner = i;
                lit = lit.trim_end().to_owned();
            }
            let trim_right = inner.ends_with(" -");
            if trim_right {
                inner = &inner[..inner.len() - 2];
            }
            if !lit.is_empty() {
                pieces.push(Piece::Text(lit));
            }
            let toks = tokens(inner)?;
            let piece = match toks.split_first() {
                None => bail!("template: empty action"),
                Some((first, rest)) if !first.starts_with('.') && !first.starts_with('"') => {
                    if !matches!(
                        first.as_str(),
                        "json" | "join" | "upper" | "lower" | "index"
                    ) {
                        bail!("template: function {first:?} not defined");
                    }
                    Piece::Action {
                        func: Some(first.clone()),
                        args: rest
                            .iter()
                            .map(|t| parse_arg(t))
                            .collect::<Result<_, _>>()?,
                    }
                }
                Some(_) => {
                    if toks.len() != 1 {
                        bail!("template: unexpected arguments in {{{{{inner}}}}}");
                    }
                    Piece::Action {
                        func: None,
                        args: vec![parse_arg(&toks[0])?],
                    }
                }
            };
            pieces.push(piece);
            rest = &after[end + 2..];
            if trim_right {
                rest = rest.trim_start();
            }
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        Ok(Template { pieces })
    }

    /// The top-level fields the template names (`.Repository` ->
    /// `Repository`), in order, for table headers.
    pub(crate) fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.pieces {
            if let Piece::Action { args, .. } = p {
                for a in args {
                    if let Arg::Path(path) = a
                        && let Some(f) = path.first()
                    {
                        out.push(f.clone());
                    }
                }
            }
        }
        out
    }

    /// Renders the template for `data`. A top-level field `data` lacks is
    /// an error (as for Docker's typed contexts); a missing nested key
    /// prints `<no value>`, as Go does for maps.
    pub(crate) fn render(&self, data: &Value) -> anyhow::Result<String> {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Action { func, args } => {
                    let vals = args
                        .iter()
                        .map(|a| eval(a, data))
                        .collect::<anyhow::Result<Vec<_>>>()?;
                    let text = match (func.as_deref(), vals.as_slice()) {
                        (None, [v]) => go_print(v),
                        (Some("json"), [v]) => serde_json::to_string(v)?,
                        (Some("upper"), [v]) => go_print(v).to_uppercase(),
                        (Some("lower"), [v]) => go_print(v).to_lowercase(),
                        (Some("join"), [Value::Array(a), Value::String(sep)]) => {
                            a.iter().map(go_print).collect::<Vec<_>>().join(sep)
                        }
                        (Some("index"), [Value::Object(m), Value::String(k)]) => {
                            m.get(k).map(go_print).unwrap_or_default()
                        }
                        (Some(f), _) => bail!("template: wrong arguments for {f}"),
                        (None, _) => bail!("template: bad action"),
                    };
                    out.push_str(&text);
                }
            }
        }
        Ok(out)
    }
}

fn eval(arg: &Arg, data: &Value) -> anyhow::Result<Value> {
    match arg {
        Arg::Str(s) => Ok(Value::String(s.clone())),
        Arg::Path(path) => {
            let mut cur = data;
            for (i, key) in path.iter().enumerate() {
                match cur.get(key) {
                    Some(v) => cur = v,
                    None if i == 0 => {
                        bail!("template: can't evaluate field {key}")
                    }
                    None => return Ok(Value::String("<no value>".into())),
                }
            }
            Ok(cur.clone())
        }
    }
}

/// Go's `fmt.Print` of a decoded JSON value.
pub(crate) fn go_print(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_print).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_print(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t)
            .and_then(|t| t.render(v))
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn renders_like_go_templates() {
        let v = json!({"ID": "abc", "Config": {"Env": ["A=1", "B=2"], "Labels": {"k": "v"}, "Cmd": null}, "Size": 12});
        assert_eq!(render("{{.ID}}\\t{{.Size}}", &v), "abc\t12");
        assert_eq!(render("{{json .Config.Env}}", &v), r#"["A=1","B=2"]"#);
        assert_eq!(render("{{.Config.Env}}", &v), "[A=1 B=2]");
        assert_eq!(render("{{.Config.Labels}}", &v), "map[k:v]");
        assert_eq!(render("{{.Config.Cmd}}", &v), "<nil>");
        assert_eq!(render("{{.Config.Nope}}", &v), "<no value>");
        assert_eq!(render("{{join .Config.Env \",\"}}", &v), "A=1,B=2");
        assert_eq!(render("{{index .Config.Labels \"k\"}}", &v), "v");
        assert_eq!(render("{{ .ID -}}  x", &v), "abcx");
        assert!(render("{{.Nope}}", &v).starts_with("ERR"));
        assert!(render("{{bogus .ID}}", &v).starts_with("ERR"));
        assert!(render("{{.ID", &v).starts_with("ERR"));
        assert_eq!(
            Template::parse("{{.A}} {{json .B}}")
                .map(|t| t.fields())
                .ok(),
            Some(vec!["A".to_string(), "B".to_string()])
        );
    }
}
