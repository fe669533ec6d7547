//! Where casa's files are: resolution of paths and switches from the command line, the
//! environment and a `.env` file, in that order of precedence (the original's variables,
//! reference §8).
//!
//! `.env` (in the working directory) is read first and never overrides a variable already
//! set in the environment: blank lines and `#` comments are skipped, `export ` is stripped,
//! and matching single or double quotes around the value are removed.

use std::{collections::HashMap, path::PathBuf};

/// Parse `.env` text into (key, value) pairs.
pub fn parse_dotenv(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k.is_empty() {
            continue;
        }
        let v = v.trim();
        let v = if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            &v[1..v.len() - 1]
        } else {
            v
        };
        out.push((k.to_owned(), v.to_owned()));
    }
    out
}

/// The process environment overlaid on `.env` (the environment wins).
#[derive(Clone, Debug, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    /// Read `.env` from the working directory (if any) under the real environment.
    pub fn load() -> Self {
        let dotenv = std::fs::read_to_string(".env").unwrap_or_default();
        Self::from_parts(parse_dotenv(&dotenv), std::env::vars())
    }

    pub fn from_parts(
        dotenv: impl IntoIterator<Item = (String, String)>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        let mut vars: HashMap<String, String> = dotenv.into_iter().collect();
        for (k, v) in env {
            vars.insert(k, v);
        }
        Self { vars }
    }

    /// The first of `names` that is set and non-empty.
    pub fn first(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|n| {
            self.vars
                .get(*n)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        })
    }

    /// CLI value, else the first set variable, else the default.
    pub fn path(&self, cli: Option<PathBuf>, names: &[&str], default: &str) -> PathBuf {
        cli.or_else(|| self.first(names).map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(default))
    }

    /// `1/true/yes/on` (case-insensitive) is true.
    pub fn flag(&self, name: &str) -> bool {
        self.first(&[name])
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_parsing() {
        let v = parse_dotenv("# c\n\nexport A=1\nB=\"two words\"\nC='x'\nbad line\n D = spaced \n");
        assert_eq!(
            v,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into()),
                ("D".into(), "spaced".into())
            ]
        );
    }

    #[test]
    fn environment_overrides_dotenv_and_cli_overrides_both() {
        let env = Env::from_parts(
            vec![
                ("CASA_RULES_PATH".into(), "from-dotenv.json".into()),
                ("X".into(), "dot".into()),
            ],
            vec![("X".into(), "env".into())],
        );
        assert_eq!(env.first(&["X"]), Some("env"));
        assert_eq!(
            env.path(None, &["CASA_RULES_PATH"], "rules.json"),
            PathBuf::from("from-dotenv.json")
        );
        assert_eq!(
            env.path(Some("cli.json".into()), &["CASA_RULES_PATH"], "rules.json"),
            PathBuf::from("cli.json")
        );
        assert_eq!(
            env.path(None, &["NOPE"], "rules.json"),
            PathBuf::from("rules.json")
        );
    }

    #[test]
    fn flags() {
        let env = Env::from_parts(vec![("CASA_DEBUG_EVAL".into(), "Yes".into())], vec![]);
        assert!(env.flag("CASA_DEBUG_EVAL"));
        assert!(!env.flag("OTHER"));
    }
}
