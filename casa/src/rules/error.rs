//! Typed, located errors of the rule loader.

use std::fmt;

/// Where in a rules (or fixture) file something is: `path:line:col`, both 1-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub path: String,
    pub line: usize,
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path, self.line, self.column)
    }
}

/// Everything that can make a `rules.json` (or a self-test fixture) unusable.
///
/// Every variant but [`RulesError::Io`] renders as `path:line:col: message`; the message is the
/// original CASA's text where it had one (`alert threshold must be >= log threshold`,
/// `rule[3] missing expr`, `compile rule "x": ...`). Rule indices are 0-based, as in the
/// original.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RulesError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Not JSON (or truncated JSON).
    #[error("{loc}: {message}")]
    Syntax { loc: Location, message: String },
    /// A key the format does not know, at any level (`unknown field "x", expected one of ...`).
    #[error("{loc}: {message}")]
    UnknownKey { loc: Location, message: String },
    /// A value of the wrong JSON type or out of range (`invalid type: string "4", expected i64`).
    #[error("{loc}: {message}")]
    InvalidValue { loc: Location, message: String },
    #[error("{loc}: response.threshold must be at least 1")]
    ResponseThreshold { loc: Location },
    #[error("{loc}: unknown response {what} {name:?} (known: {known})")]
    UnknownResponse {
        loc: Location,
        what: &'static str,
        name: String,
        known: String,
    },
    #[error("{loc}: analysis.lineage_max_depth must be > 0")]
    LineageMaxDepth { loc: Location },
    #[error("{loc}: thresholds must be non-negative")]
    NegativeThreshold { loc: Location },
    #[error("{loc}: alert threshold must be >= log threshold")]
    AlertBelowLog { loc: Location },
    #[error("{loc}: rule[{index}] missing name")]
    MissingName { loc: Location, index: usize },
    #[error("{loc}: rule[{index}] missing expr")]
    MissingExpr { loc: Location, index: usize },
    #[error("{loc}: rule[{index}] number_gte requires min_value")]
    NumberGteWithoutMinValue { loc: Location, index: usize },
    #[error("{loc}: rule[{index}] invalid legacy match mode {mode:?}")]
    InvalidMatchMode {
        loc: Location,
        index: usize,
        mode: String,
    },
    /// Two rules share a name (rules are counted once per session *by name*).
    #[error("{loc}: rule[{index}] duplicate rule name {name:?} (first used by rule[{first}])")]
    DuplicateName {
        loc: Location,
        index: usize,
        name: String,
        first: usize,
    },
    /// The expression has more operators than casa evaluates safely (the CEL parser and
    /// interpreter recurse once per operator: a long chain would overflow the stack).
    #[error(
        "{loc}: compile rule {rule:?}: expression too complex: {operators} operators and accessors (at most {limit})"
    )]
    TooComplex {
        loc: Location,
        rule: String,
        operators: usize,
        limit: usize,
    },
    /// The expression is not valid CEL.
    #[error("{loc}: compile rule {rule:?}: {message}")]
    CelSyntax {
        loc: Location,
        rule: String,
        message: String,
    },
    /// The expression references a variable or field the context does not have
    /// (`execution.nope`, `histroy.x`).
    #[error("{loc}: compile rule {rule:?}: {message}")]
    UnknownField {
        loc: Location,
        rule: String,
        /// The dotted reference as written, e.g. `execution.nope`.
        field: String,
        message: String,
    },
    /// Evaluated against an all-default context, the expression yields something other than a
    /// bool.
    #[error("{loc}: compile rule {rule:?}: expression must evaluate to a bool, got {got}")]
    NonBoolean {
        loc: Location,
        rule: String,
        got: String,
    },
    /// Evaluated against an all-default context, the expression fails for another reason.
    #[error("{loc}: compile rule {rule:?}: evaluation on an all-default context failed: {message}")]
    Evaluation {
        loc: Location,
        rule: String,
        message: String,
    },
    #[error("{loc}: analysis.ignored_connect_ips[{index}]: invalid IP address {value:?}")]
    InvalidIp {
        loc: Location,
        index: usize,
        value: String,
    },
    #[error("{loc}: parse known cidr {value:?}: {message}")]
    InvalidCidr {
        loc: Location,
        value: String,
        message: String,
    },
    /// A self-test fixture is unreadable as a context (syntax, unknown key, wrong type).
    #[error("{loc}: {message}")]
    Fixture { loc: Location, message: String },
}

impl RulesError {
    /// The `path:line:col` of the error, when it has one (all but [`RulesError::Io`]).
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::Io { .. } => None,
            Self::Syntax { loc, .. }
            | Self::UnknownKey { loc, .. }
            | Self::InvalidValue { loc, .. }
            | Self::LineageMaxDepth { loc }
            | Self::ResponseThreshold { loc }
            | Self::UnknownResponse { loc, .. }
            | Self::NegativeThreshold { loc }
            | Self::AlertBelowLog { loc }
            | Self::MissingName { loc, .. }
            | Self::MissingExpr { loc, .. }
            | Self::NumberGteWithoutMinValue { loc, .. }
            | Self::InvalidMatchMode { loc, .. }
            | Self::DuplicateName { loc, .. }
            | Self::CelSyntax { loc, .. }
            | Self::TooComplex { loc, .. }
            | Self::UnknownField { loc, .. }
            | Self::NonBoolean { loc, .. }
            | Self::Evaluation { loc, .. }
            | Self::InvalidIp { loc, .. }
            | Self::InvalidCidr { loc, .. }
            | Self::Fixture { loc, .. } => Some(loc),
        }
    }
}
