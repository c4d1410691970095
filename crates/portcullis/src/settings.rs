//! Where each setting comes from. A command's settings are its flags; each may also come
//! from a `PORTCULLIS_…` environment variable or from the TOML file named by `--config`
//! (or `PORTCULLIS_CONFIG`), in this order of precedence:
//!
//! 1. a flag on the command line,
//! 2. its environment variable,
//! 3. the configuration file (keys are the flag names, `-` or `_` alike: `public_url`),
//! 4. the built-in default.
//!
//! The file is read for every command, so `portcullis user list --config /etc/portcullis.toml`
//! opens the same database as `serve`. A key that names no setting of any command is an
//! error (a typo must not be ignored silently); a key that another command uses is skipped.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File,
    Default,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Flag => "flag",
            Source::Env => "environment",
            Source::File => "file",
            Source::Default => "default",
        }
    }
}

/// One setting of the command that runs, as it was finally decided.
#[derive(Debug, Clone)]
pub struct Setting {
    /// The key in the file: the flag's name with `_` for `-`.
    pub key: String,
    pub env: Option<String>,
    pub values: Vec<String>,
    pub source: Source,
    /// A list setting (given as a TOML array).
    pub list: bool,
}

/// The parsed command line, with where each setting came from.
#[derive(Debug)]
pub struct Layered<C> {
    pub cli: C,
    /// The configuration file that was read, if any.
    pub file: Option<PathBuf>,
    /// The settings of the command that runs, in declaration order.
    pub settings: Vec<Setting>,
}

/// Why the command line and the file could not be combined.
#[derive(Debug)]
pub enum LayerError {
    /// A flag problem, or `--help`/`--version`: clap prints and exits.
    Clap(clap::Error),
    /// A problem with the configuration file, naming the key and what would be valid.
    File(String),
}

/// Keys that are never taken from the file: they steer the command itself.
const NOT_FROM_FILE: &[&str] = &["help", "version", "config", "json"];

/// Parses `argv` as `C`, filling what neither the command line nor the environment set
/// from the configuration file. `C` must have a global `--config` argument (id `config`).
pub fn parse<C: CommandFactory + FromArgMatches>(
    argv: Vec<OsString>,
) -> Result<Layered<C>, LayerError> {
    let command = C::command();
    let first = command
        .clone()
        .try_get_matches_from(&argv)
        .map_err(LayerError::Clap)?;
    let file = first.get_one::<PathBuf>("config").cloned();
    let (leaf_cmd, leaf_m) = leaf(&command, &first);

    let mut from_file: BTreeSet<String> = BTreeSet::new();
    let mut argv2 = argv.clone();
    if let Some(path) = &file {
        let table = read_table(path)?;
        let known = all_keys(&command);
        for (key, value) in &table {
            let key = key.replace('-', "_");
            if !known.contains(&key) {
                return Err(LayerError::File(unknown_key(path, &key, &known)));
            }
            let Some(arg) = leaf_cmd
                .get_arguments()
                .find(|a| a.get_long().is_some_and(|l| l.replace('-', "_") == key))
            else {
                continue; // a setting of another command
            };
            let id = arg.get_id().as_str();
            if NOT_FROM_FILE.contains(&id) {
                continue;
            }
            if matches!(
                leaf_m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            let flag = format!("--{}", arg.get_long().unwrap_or(id));
            let values = file_values(path, &key, value)?;
            match arg.get_action() {
                ArgAction::SetTrue | ArgAction::SetFalse => match values.as_slice() {
                    [v] if v == "true" || v == "false" => {
                        let on = v == "true";
                        if on == matches!(arg.get_action(), ArgAction::SetTrue) {
                            argv2.push(flag.into());
                        }
                    }
                    _ => {
                        return Err(LayerError::File(format!(
                            "{}: `{key}` must be true or false",
                            path.display()
                        )));
                    }
                },
                ArgAction::Append => {
                    for v in values {
                        argv2.push(format!("{flag}={v}").into());
                    }
                }
                _ => {
                    let [v] = values.as_slice() else {
                        return Err(LayerError::File(format!(
                            "{}: `{key}` takes one value, not a list",
                            path.display()
                        )));
                    };
                    argv2.push(format!("{flag}={v}").into());
                }
            }
            from_file.insert(id.to_owned());
        }
    }

    let matches = command.clone().try_get_matches_from(&argv2).map_err(|e| {
        let culprit = e
            .get(clap::error::ContextKind::InvalidArg)
            .map(|v| v.to_string())
            .unwrap_or_default();
        match (
            &file,
            from_file
                .iter()
                .find(|id| culprit.contains(&id.replace('_', "-"))),
        ) {
            (Some(path), Some(id)) => {
                let rendered = e.render().to_string();
                let first = rendered.lines().next().unwrap_or_default();
                LayerError::File(format!(
                    "{}: `{id}`: {}",
                    path.display(),
                    first.trim_start_matches("error: ")
                ))
            }
            _ => LayerError::Clap(e),
        }
    })?;
    let cli = C::from_arg_matches(&matches).map_err(LayerError::Clap)?;
    let (leaf_cmd, leaf_m) = leaf(&command, &matches);
    let settings = leaf_cmd
        .get_arguments()
        .filter_map(|arg| {
            let long = arg.get_long()?;
            let id = arg.get_id().as_str();
            if NOT_FROM_FILE.contains(&id) {
                return None;
            }
            let source = match leaf_m.value_source(id) {
                Some(ValueSource::CommandLine) if from_file.contains(id) => Source::File,
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::EnvVariable) => Source::Env,
                // Hidden settings (for tests and benchmarks) show only when someone set them.
                Some(ValueSource::DefaultValue) if arg.is_hide_set() => return Some(None),
                Some(ValueSource::DefaultValue) => Source::Default,
                _ => return Some(None),
            };
            let values = leaf_m
                .get_raw(id)
                .map(|vs| {
                    vs.map(|v| v.to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            // A flag that is off says nothing worth printing.
            let values = if values.is_empty() && matches!(arg.get_action(), ArgAction::SetTrue) {
                vec![leaf_m.get_flag(id).to_string()]
            } else {
                values
            };
            Some(Some(Setting {
                key: long.replace('-', "_"),
                env: arg.get_env().map(|e| e.to_string_lossy().into_owned()),
                values,
                source,
                list: matches!(arg.get_action(), ArgAction::Append),
            }))
        })
        .flatten()
        .collect();
    Ok(Layered {
        cli,
        file,
        settings,
    })
}

/// The command that runs and its matches: the deepest subcommand named.
fn leaf<'a>(command: &'a Command, matches: &'a ArgMatches) -> (&'a Command, &'a ArgMatches) {
    let (mut cmd, mut m) = (command, matches);
    while let Some((name, sub)) = m.subcommand() {
        match cmd.find_subcommand(name) {
            Some(next) => {
                cmd = next;
                m = sub;
            }
            None => break,
        }
    }
    (cmd, m)
}

/// Every key the file may hold: the long flags of every command.
fn all_keys(command: &Command) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut stack = vec![command];
    while let Some(cmd) = stack.pop() {
        for arg in cmd.get_arguments() {
            if let Some(long) = arg.get_long()
                && !NOT_FROM_FILE.contains(&arg.get_id().as_str())
            {
                keys.insert(long.replace('-', "_"));
            }
        }
        stack.extend(cmd.get_subcommands());
    }
    keys
}

fn read_table(path: &Path) -> Result<toml::Table, LayerError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        LayerError::File(format!(
            "cannot read the configuration file {}: {e}",
            path.display()
        ))
    })?;
    text.parse::<toml::Table>().map_err(|e| {
        LayerError::File(format!(
            "{} is not valid TOML: {}",
            path.display(),
            e.to_string().trim_end()
        ))
    })
}

/// A file value as the flag's text: strings as they are, numbers and booleans written out,
/// arrays one value per element.
fn file_values(path: &Path, key: &str, value: &toml::Value) -> Result<Vec<String>, LayerError> {
    let scalar = |v: &toml::Value| match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    let bad = || {
        LayerError::File(format!(
            "{}: `{key}` must be a string, number, boolean or a list of them",
            path.display()
        ))
    };
    match value {
        toml::Value::Array(items) => items.iter().map(|v| scalar(v).ok_or_else(bad)).collect(),
        v => Ok(vec![scalar(v).ok_or_else(bad)?]),
    }
}

fn unknown_key(path: &Path, key: &str, known: &BTreeSet<String>) -> String {
    let close: Vec<&str> = known
        .iter()
        .filter(|k| edit_distance(k, key) <= 2 || k.contains(key) || key.contains(k.as_str()))
        .map(String::as_str)
        .take(3)
        .collect();
    let hint = if close.is_empty() {
        "`portcullis serve --help` lists every setting (a flag --public-url is the key public_url)"
            .to_owned()
    } else {
        format!("did you mean {}?", close.join(" or "))
    };
    format!("{}: unknown setting `{key}`: {hint}", path.display())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Reads a secret from a file: the whole content without the trailing line break.
pub fn read_secret_file(setting: &str, path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{setting} {}: cannot read it: {e}", path.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(format!(
            "{setting} {}: the file is empty: put the secret in it",
            path.display()
        ));
    }
    Ok(secret)
}

/// A value fit to print: the password of a URL, and secrets, replaced by `****`.
pub fn redact(key: &str, value: &str) -> String {
    let secret = key.ends_with("password") || key.ends_with("secret");
    if secret {
        return "****".to_owned();
    }
    if let Ok(mut url) = url::Url::parse(value)
        && url.password().is_some()
        && url.set_password(Some("****")).is_ok()
    {
        return url.to_string();
    }
    value.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_url_passwords_and_password_settings() {
        assert_eq!(
            redact(
                "database_url",
                "postgres://app:s3cret@db.internal/portcullis"
            ),
            "postgres://app:****@db.internal/portcullis"
        );
        assert_eq!(
            redact("database_url", "sqlite://portcullis.db"),
            "sqlite://portcullis.db"
        );
        assert_eq!(redact("admin_password", "hunter22hunter22"), "****");
        assert_eq!(redact("login_client_secret", "s3cret"), "****");
        assert_eq!(
            redact("password_login", "false"),
            "false",
            "a switch, not a secret"
        );
        assert_eq!(
            redact("admin_password_file", "/run/secrets/admin"),
            "/run/secrets/admin"
        );
    }

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("public_url", "public_url"), 0);
        assert_eq!(edit_distance("public_url", "publc_url"), 1);
        assert_eq!(edit_distance("bind", "bnd"), 1);
        assert!(edit_distance("bind", "database_url") > 2);
    }
}
