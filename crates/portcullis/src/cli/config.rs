//! `portcullis config check`: validates the settings `serve` would run with and prints the
//! effective configuration, each value with where it came from, secrets redacted.

use clap::Args;

use crate::config::{AuthPlan, ServeArgs};
use crate::settings::{Setting, Source, redact};

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub serve: Box<ServeArgs>,
    /// Print the effective configuration as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Checks the settings; `Ok` with the report to print, `Err` with what is wrong.
pub fn check(
    args: CheckArgs,
    file: Option<&std::path::Path>,
    settings: &[Setting],
) -> Result<String, String> {
    let config = (*args.serve).into_config().map_err(|e| {
        let mut message = e.to_string();
        // Say where the offending value came from when it was not typed on this command line.
        for s in settings {
            let flag = format!("--{}", s.key.replace('_', "-"));
            if message.contains(&flag) {
                match (s.source, file, &s.env) {
                    (Source::File, Some(path), _) => {
                        message.push_str(&format!(" (set as `{}` in {})", s.key, path.display()))
                    }
                    (Source::Env, _, Some(env)) => {
                        message.push_str(&format!(" (set by the environment variable {env})"))
                    }
                    _ => {}
                }
                break;
            }
        }
        message
    })?;
    if args.json {
        let mut map = serde_json::Map::new();
        for s in settings {
            let values: Vec<String> = s.values.iter().map(|v| redact(&s.key, v)).collect();
            let value = if s.list {
                serde_json::json!(values)
            } else {
                serde_json::json!(values.first())
            };
            map.insert(
                s.key.clone(),
                serde_json::json!({ "value": value, "source": s.source.as_str() }),
            );
        }
        return Ok(serde_json::json!({
            "valid": true,
            "file": file.map(|f| f.display().to_string()),
            "public_url": config.public_url,
            "settings": map,
        })
        .to_string());
    }
    let mut out = String::new();
    out.push_str(&format!(
        "# The effective configuration ({}flags > PORTCULLIS_* variables > file > defaults).\n",
        file.map(|f| format!("file: {}; ", f.display()))
            .unwrap_or_default()
    ));
    out.push_str("# Secrets are shown as ****. Unset settings are left out.\n");
    let width = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
    for s in settings {
        let value = toml_value(s);
        let from = match (s.source, &s.env) {
            (Source::Env, Some(env)) => format!("environment {env}"),
            (source, _) => source.as_str().to_owned(),
        };
        let line = format!("{:<width$} = {value}", s.key);
        out.push_str(&format!("{line:<60}  # {from}\n"));
    }
    let auth = match &config.auth {
        AuthPlan::None => "no authentication (loopback only)".to_owned(),
        AuthPlan::Embedded { config: c, .. } => {
            format!("embedded authorization server, issuer {}", c.issuer)
        }
        AuthPlan::External { config: c, .. } => format!(
            "tokens from the external authorization server {} (checked by {})",
            c.issuer,
            match c.check {
                portcullis_authz::external::TokenCheck::Jwt => "signature",
                portcullis_authz::external::TokenCheck::Introspection { .. } => "introspection",
            }
        ),
    };
    out.push_str(&format!(
        "\nconfiguration is valid: MCP endpoint {} on {}, {auth}\n",
        config.public_url, config.bind
    ));
    Ok(out)
}

fn toml_value(s: &Setting) -> String {
    let one = |v: &String| {
        let v = redact(&s.key, v);
        if v.parse::<i64>().is_ok() || v == "true" || v == "false" {
            v
        } else {
            format!("{v:?}")
        }
    };
    if s.list {
        format!(
            "[{}]",
            s.values.iter().map(one).collect::<Vec<_>>().join(", ")
        )
    } else {
        s.values.first().map(one).unwrap_or_default()
    }
}
