//! `vars:` in devenv.yaml and `--set NAME=VALUE` on the command line: psql variables set
//! before the first file, as `psql -v NAME=VALUE` sets them, for setup scripts written for
//! `psql -v` (`CREATE USER :USER_NAME PASSWORD :'USER_PASSWORD'`).
//!
//! - Names are psql's variable names (letters, digits, `_`); values are strings (YAML
//!   integers and booleans are taken as written; a YAML float must be quoted, `"1.10"`, so
//!   that it is not read as `1.1`).
//! - A value may take environment variables: `${NAME}`, `${NAME:-default}` (the default when
//!   `NAME` is unset or empty); `$$` is one `$`. A variable that is unset (and has no
//!   default) is a config error naming it and its line, for every command that loads the
//!   files (not for `down`, `status`, ...).
//! - Secrets: a value is secret when its name holds `PASSWORD`, `PASSWD`, `PWD`, `SECRET`,
//!   `TOKEN`, `KEY` or `CREDENTIAL` (any case), or when it takes anything from the
//!   environment. devenv prints secret values as `****` (the CLI registers them with its
//!   redaction).

use std::collections::BTreeMap;

/// Name parts that make a variable's value a secret.
const SECRET_NAMES: [&str; 7] = [
    "PASSWORD",
    "PASSWD",
    "PWD",
    "SECRET",
    "TOKEN",
    "KEY",
    "CREDENTIAL",
];

/// One variable's value.
#[derive(Clone, PartialEq, Eq)]
pub struct Var {
    /// The value, environment variables expanded.
    pub value: String,
    /// Whether devenv masks it when printing.
    pub secret: bool,
}

/// The psql variables a project's loads start with (`Debug` masks the secret values).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Vars {
    vars: BTreeMap<String, Var>,
    /// A value whose environment variable is not set: an error for whatever loads (see
    /// [`crate::Config::check_files`]), not for `down` or `status`.
    pub(crate) unset: Option<Unset>,
}

impl std::fmt::Debug for Vars {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.vars.iter().map(|(name, var)| {
                let value = if var.secret {
                    devenv_server::conninfo::MASK
                } else {
                    var.value.as_str()
                };
                (name, value)
            }))
            .finish()
    }
}

impl Vars {
    /// Sets `name` (from `--set`; a secret by its name).
    pub fn set(&mut self, name: &str, value: &str) {
        if self.unset.as_ref().is_some_and(|u| u.name == name) {
            self.unset = None;
        }
        self.vars.insert(
            name.to_owned(),
            Var {
                value: value.to_owned(),
                secret: secret_name(name),
            },
        );
    }

    /// Whether none is set.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }

    /// The variables as the loader takes them.
    pub fn values(&self) -> devenv_sql::scan::Variables {
        self.vars
            .iter()
            .map(|(name, var)| (name.clone(), var.value.clone()))
            .collect()
    }

    /// The secret values.
    pub fn secrets(&self) -> impl Iterator<Item = &str> {
        self.vars
            .values()
            .filter(|v| v.secret)
            .map(|v| v.value.as_str())
    }

    /// `(name, value)` in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(name, var)| (name.as_str(), var))
    }

    /// The values of devenv.yaml's `vars:`, expanded with `env`; the first that takes an
    /// environment variable that is not set is left out and noted ([`Vars::unset`]).
    pub(crate) fn resolve(
        raw: BTreeMap<String, String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Vars {
        let mut out = Vars::default();
        for (name, text) in raw {
            match expand(&text, env) {
                Ok((value, from_env)) => {
                    let secret = from_env || secret_name(&name);
                    out.vars.insert(name, Var { value, secret });
                }
                Err(missing) => {
                    out.unset.get_or_insert(Unset { name, missing });
                }
            }
        }
        out
    }
}

/// A `${NAME}` of a `vars:` value that the environment does not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unset {
    /// The variable under `vars:`.
    pub name: String,
    /// The environment variable.
    pub missing: String,
}

/// Whether a variable named `name` holds a secret.
pub fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_NAMES.iter().any(|s| upper.contains(s))
}

/// Checks a name given to `vars:` or `--set`: psql's rule for variable names.
pub fn check_name(name: &str) -> Result<(), String> {
    if devenv_sql::scan::valid_variable_name(name) {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a psql variable name (letters, digits and `_` only)"
        ))
    }
}

/// `NAME=VALUE` of `--set`.
pub fn parse_set(arg: &str) -> Result<(String, String), String> {
    let Some((name, value)) = arg.split_once('=') else {
        return Err(format!("`{arg}`: expected NAME=VALUE"));
    };
    check_name(name)?;
    Ok((name.to_owned(), value.to_owned()))
}

/// `text` with `${NAME}`, `${NAME:-default}` and `$$` expanded; whether anything came from
/// the environment. `Err` names an unset variable.
fn expand(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(text.len());
    let mut from_env = false;
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some((inner, tail)) = after
            .strip_prefix('{')
            .and_then(|body| body.split_once('}'))
        {
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            match (
                env(name).filter(|v| !v.is_empty() || default.is_none()),
                default,
            ) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => return Err(name.to_owned()),
            }
            from_env = true;
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok((out, from_env))
}

/// Deserializes `vars:`: a map of psql variable names to scalars, each checked where it is
/// (so an error carries its line and column, as serde_yaml's own do).
pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    use serde::de::{MapAccess, Visitor};
    struct Map;
    struct Value;
    impl<'de> Visitor<'de> for Map {
        type Value = Option<BTreeMap<String, String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a map of psql variable names to values")
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key_seed(super::Checked(check_name))? {
                let value = map.next_value_seed(Value)?;
                out.insert(name, value);
            }
            Ok(Some(out))
        }
    }
    impl<'de> serde::de::DeserializeSeed<'de> for Value {
        type Value = String;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl Visitor<'_> for Value {
        type Value = String;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Err(E::custom(format!(
                "YAML reads this value as the number {v}; quote it to keep it as written"
            )))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<String, E> {
            Err(E::custom("a value is needed (`\"\"` for an empty one)"))
        }
    }
    d.deserialize_any(Map)
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.secret {
            devenv_server::conninfo::MASK
        } else {
            self.value.as_str()
        };
        f.debug_struct("Var")
            .field("value", &value)
            .field("secret", &self.secret)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_are_expanded_and_make_a_secret() {
        let env = |name: &str| match name {
            "PW" => Some("s3cret".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let raw: BTreeMap<String, String> = [
            ("APP_PW", "${PW}"),
            ("WITH_DEFAULT", "${NOPE:-fallback}-${EMPTY:-e}"),
            ("PLAIN", "a $ b $$ c"),
            ("API_KEY", "k"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let vars = Vars::resolve(raw, &env);
        assert_eq!(vars.unset, None);
        let got: Vec<(&str, &str, bool)> = vars
            .iter()
            .map(|(name, var)| (name, var.value.as_str(), var.secret))
            .collect();
        assert_eq!(
            got,
            [
                ("API_KEY", "k", true),
                ("APP_PW", "s3cret", true),
                ("PLAIN", "a $ b $ c", false),
                ("WITH_DEFAULT", "fallback-e", true),
            ]
        );
        let raw = [("X".to_owned(), "${MISSING}".to_owned())]
            .into_iter()
            .collect();
        assert_eq!(
            Vars::resolve(raw, &env).unset,
            Some(Unset {
                name: "X".into(),
                missing: "MISSING".into()
            })
        );
    }

    #[test]
    fn set_takes_name_equals_value() {
        assert_eq!(parse_set("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_set("A").is_err());
        assert!(parse_set("bad-name=1").is_err());
        let mut vars = Vars::default();
        vars.set("DB_PASSWORD", "x");
        vars.set("USER_NAME", "y");
        assert_eq!(vars.secrets().collect::<Vec<_>>(), ["x"]);
        assert_eq!(
            format!("{vars:?}"),
            r#"{"DB_PASSWORD": "****", "USER_NAME": "y"}"#
        );
    }
}
