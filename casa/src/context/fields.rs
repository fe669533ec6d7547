//! The machinery behind the one definition of the context: [`context_schema!`] turns the
//! field list in `context/mod.rs` into the [`Context`] structs **and** a field table
//! ([`Context::GROUPS`], [`Field`]), from which everything else that names a field is
//! produced: the CEL variables (`rules/eval.rs`), the rule self-test fixtures
//! ([`Field::positive_fixture`], [`baseline_fixture`], `rules/selftest.rs`), the span's final
//! state (`telemetry/span.rs`), the sticky merge of `execution`/`capability`
//! ([`Execution::merge`](super::Execution::merge)) and README's field table
//! ([`markdown_table`], regenerated with `casa rules fields --markdown`).
//!
//! A field's type decides everything type-specific through [`FieldType`]: its CEL value, its
//! span attribute value, its sticky merge (bool: OR; int: maximum; string list: union in
//! first-seen order), its type name in the docs and its positive fixture value.

use super::Context;

/// The type of a context field, as CEL and the docs name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// CEL `bool`.
    Bool,
    /// CEL `int` (64-bit signed).
    Int,
    /// CEL `list(string)`.
    StrList,
}

impl FieldKind {
    /// The CEL type name (`bool`, `int`, `list(string)`).
    pub fn cel_type(self) -> &'static str {
        match self {
            Self::Bool => "bool",
            Self::Int => "int",
            Self::StrList => "list(string)",
        }
    }

    /// A non-default value of this type, as fixture JSON.
    pub fn positive_json(self) -> serde_json::Value {
        match self {
            Self::Bool => true.into(),
            Self::Int => 1.into(),
            Self::StrList => serde_json::json!(["x"]),
        }
    }
}

/// The value of one context field, borrowed from a [`Context`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValue<'a> {
    Bool(bool),
    Int(i64),
    StrList(&'a [String]),
}

/// A Rust type that can be a context field.
pub trait FieldType: Default {
    /// What CEL and the docs call it.
    const KIND: FieldKind;
    /// The field's value, for CEL and the span.
    fn value(&self) -> FieldValue<'_>;
    /// Sticky merge of another process's value into the session's.
    fn merge(&mut self, other: &Self);
}

impl FieldType for bool {
    const KIND: FieldKind = FieldKind::Bool;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Bool(*self)
    }
    fn merge(&mut self, other: &Self) {
        *self |= *other;
    }
}

impl FieldType for i64 {
    const KIND: FieldKind = FieldKind::Int;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::Int(*self)
    }
    fn merge(&mut self, other: &Self) {
        *self = (*self).max(*other);
    }
}

impl FieldType for Vec<String> {
    const KIND: FieldKind = FieldKind::StrList;
    fn value(&self) -> FieldValue<'_> {
        FieldValue::StrList(self)
    }
    fn merge(&mut self, other: &Self) {
        for s in other {
            if !self.contains(s) {
                self.push(s.clone());
            }
        }
    }
}

/// One CEL-visible context field (a row of the field table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The CEL variable holding it (`execution`, `capability`, `history`).
    pub group: &'static str,
    /// The field name inside the group.
    pub name: &'static str,
    /// The CEL reference, `<group>.<name>`.
    pub path: &'static str,
    /// The span attribute carrying its final value, `casa.<group>.<name>`.
    pub span_key: &'static str,
    pub kind: FieldKind,
    /// Its meaning: the field's rustdoc, one raw line per `///` line.
    pub doc: &'static str,
}

impl Field {
    /// The meaning on one line (the rustdoc lines trimmed and joined).
    pub fn meaning(&self) -> String {
        one_line(self.doc)
    }

    /// A self-test fixture that sets this field, and only it, to a non-default value:
    /// `{"<group>": {"<name>": <value>}}`.
    pub fn positive_fixture(&self) -> serde_json::Value {
        let mut inner = serde_json::Map::new();
        inner.insert(self.name.to_owned(), self.kind.positive_json());
        let mut outer = serde_json::Map::new();
        outer.insert(self.group.to_owned(), inner.into());
        outer.into()
    }

    /// A CEL expression that is true exactly when the field is not at its default.
    pub fn positive_expr(&self) -> String {
        match self.kind {
            FieldKind::Bool => self.path.to_owned(),
            FieldKind::Int => format!("{} != 0", self.path),
            FieldKind::StrList => format!("size({}) != 0", self.path),
        }
    }
}

/// One CEL map variable of the context and its fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Group {
    /// The CEL variable name.
    pub name: &'static str,
    /// Its meaning: the struct's rustdoc, one raw line per `///` line.
    pub doc: &'static str,
    pub fields: &'static [Field],
}

/// The meaning of the top-level `session_id` variable (not a field of any group).
pub const SESSION_ID_DOC: &str = "The session's id, as in `sessions.log` and the audit and \
alert records.";

/// The self-test baseline: every field at its default, written out in full.
pub fn baseline_fixture() -> serde_json::Value {
    serde_json::to_value(Context::default()).unwrap_or_default()
}

fn one_line(doc: &str) -> String {
    doc.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The marker lines around the generated field table in README.md.
pub const README_BEGIN: &str =
    "<!-- context-fields:begin (generated by `casa rules fields --markdown`; do not edit) -->";
/// See [`README_BEGIN`].
pub const README_END: &str = "<!-- context-fields:end -->";

/// README's context-field table: one row per CEL variable or field (name, type, meaning),
/// then one line per group saying how it accumulates. Newline-terminated.
pub fn markdown_table() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from("| field | type | meaning |\n|---|---|---|\n");
    out.push_str(&format!(
        "| `session_id` | int | {} |\n",
        cell(&one_line(SESSION_ID_DOC))
    ));
    for group in Context::GROUPS {
        for f in group.fields {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                f.path,
                f.kind.cel_type(),
                cell(&f.meaning())
            ));
        }
    }
    out.push('\n');
    for group in Context::GROUPS {
        out.push_str(&format!("* `{}.*`: {}\n", group.name, one_line(group.doc)));
    }
    out
}

/// Plain listing for `casa rules fields`: `<path> <type>  <meaning>` per line.
pub fn plain_table() -> String {
    let mut rows = vec![("session_id", "int", one_line(SESSION_ID_DOC))];
    for group in Context::GROUPS {
        for f in group.fields {
            rows.push((f.path, f.kind.cel_type(), f.meaning()));
        }
    }
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let twidth = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(p, t, m)| format!("{p:width$}  {t:twidth$}  {m}\n"))
        .collect()
}

/// Declares the context: the [`Context`] struct (`session_id` and one field per group), one
/// struct per group with its CEL fields and optional `internal` fields (kept in the struct
/// and merged, but not in CEL, the span, the fixtures or the docs), and the field table.
///
/// ```text
/// context_schema! {
///     /// Group meaning.
///     group execution: Execution {
///         /// Field meaning.
///         suspicious_path_exec: bool,
///     }
///     internal {
///         /// Not exposed.
///         hidden: bool,
///     }
/// }
/// ```
macro_rules! context_schema {
    (
        $(
            $(#[doc = $gdoc:literal])*
            group $group:ident : $Group:ident {
                $(
                    $(#[doc = $fdoc:literal])*
                    $field:ident : $fty:ty
                ),* $(,)?
            }
            $( internal {
                $(
                    $(#[doc = $idoc:literal])*
                    $ifield:ident : $ity:ty
                ),* $(,)?
            } )?
        )*
    ) => {
        $(
            $(#[doc = $gdoc])*
            #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
            #[serde(default, deny_unknown_fields)]
            pub struct $Group {
                $( $(#[doc = $fdoc])* pub $field: $fty, )*
                $($( $(#[doc = $idoc])* #[serde(skip)] pub $ifield: $ity, )*)?
            }

            impl $Group {
                /// This group's CEL fields, in definition order.
                pub const FIELDS: &'static [$crate::context::Field] = &[$(
                    $crate::context::Field {
                        group: stringify!($group),
                        name: stringify!($field),
                        path: concat!(stringify!($group), ".", stringify!($field)),
                        span_key: concat!("casa.", stringify!($group), ".", stringify!($field)),
                        kind: <$fty as $crate::context::FieldType>::KIND,
                        doc: concat!($($fdoc, "\n",)*),
                    },
                )*];

                /// The names of [`Self::FIELDS`].
                pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

                /// Each CEL field with its value, in definition order.
                pub fn values(
                    &self,
                ) -> impl Iterator<Item = (&'static $crate::context::Field, $crate::context::FieldValue<'_>)>
                {
                    Self::FIELDS
                        .iter()
                        .zip([$($crate::context::FieldType::value(&self.$field)),*])
                }

                /// Sticky merge of `other` into `self`, field by field (internal fields too):
                /// see [`FieldType::merge`]($crate::context::FieldType::merge).
                pub fn merge(&mut self, other: &Self) {
                    $( $crate::context::FieldType::merge(&mut self.$field, &other.$field); )*
                    $($( $crate::context::FieldType::merge(&mut self.$ifield, &other.$ifield); )*)?
                }
            }
        )*

        /// The CEL input of one session at one moment. Field names are the CEL names.
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default, deny_unknown_fields, expecting = "a context object")]
        pub struct Context {
            /// See [`SESSION_ID_DOC`]($crate::context::SESSION_ID_DOC).
            pub session_id: u64,
            $( $(#[doc = $gdoc])* pub $group: $Group, )*
        }

        impl Context {
            /// The CEL map variables and their fields, in definition order.
            pub const GROUPS: &'static [$crate::context::Group] = &[$(
                $crate::context::Group {
                    name: stringify!($group),
                    doc: concat!($($gdoc, "\n",)*),
                    fields: $Group::FIELDS,
                },
            )*];

            /// Every CEL variable: the groups, then `session_id`.
            pub const VARIABLES: &'static [&'static str] = &[$(stringify!($group),)* "session_id"];

            /// Every CEL field with its value: the groups in order, each in field order.
            pub fn values(
                &self,
            ) -> impl Iterator<Item = (&'static $crate::context::Field, $crate::context::FieldValue<'_>)>
            {
                std::iter::empty()$(.chain(self.$group.values()))*
            }
        }
    };
}

pub(crate) use context_schema;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Capability, Execution, History};

    #[test]
    fn table_is_consistent() {
        let mut paths = std::collections::HashSet::new();
        for g in Context::GROUPS {
            assert!(!one_line(g.doc).is_empty(), "{} has no doc", g.name);
            for f in g.fields {
                assert_eq!(f.group, g.name);
                assert_eq!(f.path, format!("{}.{}", f.group, f.name));
                assert_eq!(f.span_key, format!("casa.{}", f.path));
                assert!(!f.meaning().is_empty(), "{} has no doc", f.path);
                assert!(paths.insert(f.path), "{} twice", f.path);
            }
        }
        assert_eq!(
            Context::VARIABLES,
            ["execution", "capability", "history", "session_id"]
        );
        assert_eq!(Execution::NAMES.len(), Execution::FIELDS.len());
        assert_eq!(paths.len(), Context::default().values().count());
    }

    #[test]
    fn serialized_context_has_exactly_the_table_fields() {
        // What serde sees (fixtures, the baseline) and what the table lists must agree:
        // internal fields are skipped by both.
        let json = baseline_fixture();
        let obj = json.as_object().expect("object");
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut want = Context::VARIABLES.to_vec();
        want.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, want);
        for g in Context::GROUPS {
            let mut got: Vec<&str> = obj[g.name]
                .as_object()
                .expect("group object")
                .keys()
                .map(String::as_str)
                .collect();
            got.sort_unstable();
            let mut want: Vec<&str> = g.fields.iter().map(|f| f.name).collect();
            want.sort_unstable();
            assert_eq!(got, want, "{}", g.name);
        }
    }

    #[test]
    fn each_positive_fixture_sets_exactly_its_field() {
        for f in Context::GROUPS.iter().flat_map(|g| g.fields) {
            let ctx: Context =
                serde_json::from_value(f.positive_fixture()).expect("fixture parses");
            let changed: Vec<&str> = ctx
                .values()
                .zip(Context::default().values())
                .filter(|(a, b)| a.1 != b.1)
                .map(|(a, _)| a.0.path)
                .collect();
            assert_eq!(changed, [f.path]);
        }
        let base: Context = serde_json::from_value(baseline_fixture()).expect("parses");
        assert_eq!(base, Context::default());
    }

    #[test]
    fn merge_is_or_max_union() {
        let mut a = Capability {
            dangerous_count: 2,
            capability_unknown: true,
            ..Capability::default()
        };
        a.merge(&Capability {
            has_dangerous_caps: true,
            dangerous_count: 1,
            ..Capability::default()
        });
        assert!(a.has_dangerous_caps && !a.seccomp_disabled && a.capability_unknown);
        assert_eq!(a.dangerous_count, 2);
        let mut h = History::default();
        h.merge(&History {
            burst_exec: true,
            ..History::default()
        });
        assert!(h.burst_exec && !h.burst_open);
        let mut l = vec!["a".to_owned(), "b".to_owned()];
        l.merge(&vec!["b".to_owned(), "c".to_owned()]);
        assert_eq!(l, ["a", "b", "c"]);
        assert_eq!(l.value(), FieldValue::StrList(&l));
        assert_eq!(<Vec<String> as FieldType>::KIND.cel_type(), "list(string)");
    }

    #[test]
    fn markdown_table_has_one_row_per_field() {
        let table = markdown_table();
        let rows: Vec<&str> = table
            .lines()
            .filter(|l| l.starts_with("| `"))
            .map(|l| l.split('`').nth(1).unwrap_or(""))
            .collect();
        let mut want = vec!["session_id"];
        want.extend(
            Context::GROUPS
                .iter()
                .flat_map(|g| g.fields)
                .map(|f| f.path),
        );
        assert_eq!(rows, want);
        assert!(
            table.contains("| `capability.dangerous_count` | int | "),
            "{table}"
        );
        assert!(
            table.contains("| `execution.deep_chain` | bool | "),
            "{table}"
        );
    }

    /// README.md's rules section holds [`markdown_table`] between the markers. To update it
    /// after changing the definition: `casa rules fields --markdown` prints the block.
    #[test]
    fn readme_table_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
        let readme = std::fs::read_to_string(path).expect("README.md readable");
        let begin = readme
            .find(README_BEGIN)
            .unwrap_or_else(|| panic!("README.md lacks the marker {README_BEGIN}"));
        let rest = &readme[begin + README_BEGIN.len()..];
        let end = rest
            .find(README_END)
            .unwrap_or_else(|| panic!("README.md lacks the marker {README_END}"));
        let found = rest[..end].trim_start_matches('\n');
        let want = markdown_table();
        assert!(
            found == want,
            "README.md's context-field table is out of date: replace the lines between \
             the markers with the output of `casa rules fields --markdown` \
             (`cargo run -p casa -- rules fields --markdown`). Expected:\n{want}"
        );
    }
}
