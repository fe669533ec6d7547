//! CEL: the activation built from a [`Context`], the static reference check done at load
//! time, and [`RuleBits`], the set of rule indices the evaluator and the scorer exchange.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr};
use cel::common::types::{CelBool, CelInt, CelList, CelMap, CelMapKey, CelString};
use cel::common::value::Val;
use cel::{Env, IdedExpr, Program, Value};

use crate::context::{Capability, Context, Execution, FieldValue, History};

/// The CEL variables (reference §5.5), from the context definition ([`Context::VARIABLES`]).
pub const VARIABLES: &[&str] = Context::VARIABLES;
/// The fields of `execution` ([`Execution::NAMES`]).
pub const EXECUTION_FIELDS: &[&str] = Execution::NAMES;
/// The fields of `capability` ([`Capability::NAMES`]).
pub const CAPABILITY_FIELDS: &[&str] = Capability::NAMES;
/// The fields of `history` ([`History::NAMES`]).
pub const HISTORY_FIELDS: &[&str] = History::NAMES;

/// CEL type names that may appear as bare identifiers (`type(x) == int`).
const TYPE_NAMES: [&str; 11] = [
    "int",
    "uint",
    "double",
    "bool",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

/// The field names of a map variable of the context.
fn fields_of(variable: &str) -> Option<Vec<&'static str>> {
    Context::GROUPS
        .iter()
        .find(|g| g.name == variable)
        .map(|g| g.fields.iter().map(|f| f.name).collect())
}

/// The CEL map of one group of the context.
type CelFields = HashMap<CelMapKey<'static>, Box<dyn Val>>;

/// The CEL value of a context field.
fn cel_value(value: FieldValue<'_>) -> Box<dyn Val> {
    match value {
        FieldValue::Bool(b) => Box::new(CelBool::from(b)),
        FieldValue::Int(i) => Box::new(CelInt::from(i)),
        FieldValue::StrList(items) => Box::new(CelList::from(
            items
                .iter()
                .map(|s| Box::new(CelString::from(s.clone())) as Box<dyn Val>)
                .collect::<Vec<_>>(),
        )),
    }
}

/// The CEL activation of one context: one map per group of the context definition
/// (`execution`, `capability`, `history`) holding its fields, and `session_id`. Internal
/// fields (`capability_unknown`) are not part of the definition's field table, so not
/// exposed.
pub(crate) fn activation(env: &Arc<Env>, ctx: &Context) -> cel::Context<'static, 'static> {
    let mut maps: Vec<(&str, CelFields)> = Context::GROUPS
        .iter()
        .map(|g| (g.name, HashMap::with_capacity(g.fields.len())))
        .collect();
    for (field, value) in ctx.values() {
        if let Some((_, map)) = maps.iter_mut().find(|(name, _)| *name == field.group) {
            map.insert(CelMapKey::from(field.name), cel_value(value));
        }
    }
    let mut act = cel::Context::with_env(Arc::clone(env));
    for (name, map) in maps {
        act.add_variable_as_val(name, Box::new(CelMap::from(map)));
    }
    let session_id = i64::try_from(ctx.session_id).unwrap_or(i64::MAX);
    act.add_variable_as_val("session_id", Box::new(CelInt::from(session_id)));
    act
}

/// Runs a program; a panic inside the interpreter is turned into an error, never propagated.
pub(crate) fn execute(program: &Program, act: &cel::Context<'_, '_>) -> Result<Value, String> {
    match catch_unwind(AssertUnwindSafe(|| program.execute(act))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the CEL interpreter panicked".to_owned()),
    }
}

/// Compiles with the environment's parser; a parser panic becomes an error.
pub(crate) fn compile(env: &Env, expr: &str) -> Result<Program, cel::ParseErrors> {
    match catch_unwind(AssertUnwindSafe(|| env.compile(expr))) {
        Ok(r) => r,
        Err(_) => Err(cel::ParseErrors {
            errors: vec![cel::ParseError {
                source: None,
                pos: (1, 1),
                msg: "the CEL parser panicked on this expression".to_owned(),
                expr_id: 0,
                source_info: None,
            }],
        }),
    }
}

/// A reference the context cannot satisfy, found by [`check_references`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadReference {
    /// The dotted reference, e.g. `execution.nope` or `histroy`.
    pub field: String,
    pub message: String,
    /// Byte offset of the reference inside the expression.
    pub offset: usize,
}

/// Walks the expression and reports the first identifier or field selection that does not
/// exist in the activation. Unlike evaluating, this also sees operands that `&&` / `||`
/// would short-circuit away.
pub(crate) fn check_references(program: &Program) -> Option<BadReference> {
    let mut scope = Vec::new();
    walk(program.expression(), program, &mut scope)
}

fn offset_of(program: &Program, id: u64) -> usize {
    program
        .source_info()
        .offset_for(id)
        .map_or(0, |(start, _)| start as usize)
}

fn unknown_variable(name: &str, offset: usize) -> BadReference {
    BadReference {
        field: name.to_owned(),
        message: format!(
            "undeclared reference to '{name}' (variables: {})",
            VARIABLES.join(", ")
        ),
        offset,
    }
}

fn walk(e: &IdedExpr, program: &Program, scope: &mut Vec<String>) -> Option<BadReference> {
    let bound = |name: &str, scope: &Vec<String>| scope.iter().any(|s| s == name);
    match &e.expr {
        Expr::Ident(name) => {
            if name.starts_with('@')
                || bound(name, scope)
                || VARIABLES.contains(&name.as_str())
                || TYPE_NAMES.contains(&name.as_str())
            {
                None
            } else {
                Some(unknown_variable(name, offset_of(program, e.id)))
            }
        }
        Expr::Select(sel) => {
            match &sel.operand.expr {
                Expr::Ident(var) if !bound(var, scope) => {
                    let offset = offset_of(program, sel.operand.id);
                    if let Some(fields) = fields_of(var) {
                        if fields.contains(&sel.field.as_str()) {
                            return None;
                        }
                        return Some(BadReference {
                            field: format!("{var}.{}", sel.field),
                            message: format!(
                                "unknown field '{var}.{}' ({var} has: {})",
                                sel.field,
                                fields.join(", ")
                            ),
                            offset,
                        });
                    }
                    if var == "session_id" {
                        return Some(BadReference {
                            field: format!("session_id.{}", sel.field),
                            message: "session_id is an int and has no fields".to_owned(),
                            offset,
                        });
                    }
                    // Not a variable of ours: reported by the identifier check.
                    walk(&sel.operand, program, scope)
                }
                Expr::Select(inner) => match &inner.operand.expr {
                    Expr::Ident(var) if !bound(var, scope) && fields_of(var).is_some() => {
                        // `execution.a` is a scalar: `execution.a.b` cannot exist.
                        walk(&sel.operand, program, scope).or_else(|| {
                            Some(BadReference {
                                field: format!("{var}.{}.{}", inner.field, sel.field),
                                message: format!(
                                    "unknown field '{var}.{}.{}' ({var}.{} is not a map)",
                                    inner.field, sel.field, inner.field
                                ),
                                offset: offset_of(program, inner.operand.id),
                            })
                        })
                    }
                    _ => walk(&sel.operand, program, scope),
                },
                _ => walk(&sel.operand, program, scope),
            }
        }
        Expr::Call(call) => call
            .target
            .iter()
            .map(|t| t.as_ref())
            .chain(call.args.iter())
            .find_map(|a| walk(a, program, scope)),
        Expr::Comprehension(c) => {
            if let Some(bad) = walk(&c.iter_range, program, scope) {
                return Some(bad);
            }
            if let Some(bad) = walk(&c.accu_init, program, scope) {
                return Some(bad);
            }
            let depth = scope.len();
            scope.push(c.iter_var.clone());
            if let Some(v2) = &c.iter_var2 {
                scope.push(v2.clone());
            }
            scope.push(c.accu_var.clone());
            let bad = [&c.loop_cond, &c.loop_step, &c.result]
                .into_iter()
                .find_map(|x| walk(x, program, scope));
            scope.truncate(depth);
            bad
        }
        Expr::List(list) => list.elements.iter().find_map(|x| walk(x, program, scope)),
        Expr::Map(map) => map.entries.iter().find_map(|entry| match &entry.expr {
            EntryExpr::StructField(f) => walk(&f.value, program, scope),
            EntryExpr::MapEntry(m) => {
                walk(&m.key, program, scope).or_else(|| walk(&m.value, program, scope))
            }
        }),
        Expr::Struct(s) => s.entries.iter().find_map(|entry| match &entry.expr {
            EntryExpr::StructField(f) => walk(&f.value, program, scope),
            EntryExpr::MapEntry(m) => {
                walk(&m.key, program, scope).or_else(|| walk(&m.value, program, scope))
            }
        }),
        _ => None,
    }
}

/// A set of rule indices (positions in [`super::RuleSet::rules`]).
#[derive(Clone, Default)]
pub struct RuleBits {
    words: Vec<u64>,
}

impl PartialEq for RuleBits {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for RuleBits {}

impl std::hash::Hash for RuleBits {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.significant().hash(state);
    }
}

impl RuleBits {
    /// The words without trailing zero words (equal sets compare equal whatever their capacity).
    fn significant(&self) -> &[u64] {
        let len = self
            .words
            .iter()
            .rposition(|w| *w != 0)
            .map_or(0, |i| i + 1);
        &self.words[..len]
    }

    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, index: usize) {
        let (w, b) = (index / 64, index % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        self.words[w] |= 1 << b;
    }

    pub fn remove(&mut self, index: usize) {
        if let Some(word) = self.words.get_mut(index / 64) {
            *word &= !(1 << (index % 64));
        }
    }

    pub fn contains(&self, index: usize) -> bool {
        self.words
            .get(index / 64)
            .is_some_and(|w| w & (1 << (index % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    pub fn clear(&mut self) {
        self.words.clear();
    }

    /// The indices, ascending (= file order).
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| w * 64 + b)
        })
    }

    /// Adds every index of `other`.
    pub fn union_with(&mut self, other: &RuleBits) {
        if self.words.len() < other.words.len() {
            self.words.resize(other.words.len(), 0);
        }
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a |= b;
        }
    }

    /// The indices of `self` that are not in `other`.
    pub fn difference(&self, other: &RuleBits) -> RuleBits {
        let words = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| w & !other.words.get(i).copied().unwrap_or(0))
            .collect();
        RuleBits { words }
    }
}

impl FromIterator<usize> for RuleBits {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut bits = RuleBits::new();
        for i in iter {
            bits.insert(i);
        }
        bits
    }
}

impl fmt::Debug for RuleBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(expr: &str) -> Option<String> {
        let program = Program::compile(expr).expect("compiles");
        check_references(&program).map(|b| b.field)
    }

    #[test]
    fn static_check_sees_through_short_circuits() {
        assert_eq!(bad("history.burst_exec"), None);
        assert_eq!(
            bad("capability.dangerous_count >= 2 && session_id > 0"),
            None
        );
        assert_eq!(
            bad("history.burst_exec && execution.nope").as_deref(),
            Some("execution.nope")
        );
        assert_eq!(
            bad("history.burst_exec || histroy.x").as_deref(),
            Some("histroy")
        );
        assert_eq!(
            bad("has(execution.nope)").as_deref(),
            Some("execution.nope")
        );
        assert_eq!(
            bad("execution.deep_chain.x").as_deref(),
            Some("execution.deep_chain.x")
        );
        assert_eq!(bad("session_id.x").as_deref(), Some("session_id.x"));
        assert_eq!(bad("[1, 2].exists(x, x > 1 && history.burst_open)"), None);
        assert_eq!(bad("[1, 2].exists(x, y > 1)").as_deref(), Some("y"));
        assert_eq!(bad("type(capability.dangerous_count) == int"), None);
        assert_eq!(
            bad("{'a': history.nope}['a']").as_deref(),
            Some("history.nope")
        );
    }

    #[test]
    fn offsets_point_at_the_reference() {
        let program = Program::compile("history.burst_exec && execution.nope").expect("compiles");
        assert_eq!(check_references(&program).map(|b| b.offset), Some(22));
    }

    #[test]
    fn activation_matches_context_serialization() {
        // The serialized Context (which skips capability_unknown) has exactly our variables
        // and fields: guards against the context module growing a field we do not expose.
        let json = serde_json::to_value(Context::default()).expect("serializes");
        let obj = json.as_object().expect("object");
        let mut top: Vec<&str> = obj.keys().map(String::as_str).collect();
        top.sort_unstable();
        let mut want = VARIABLES.to_vec();
        want.sort_unstable();
        assert_eq!(top, want);
        for var in ["execution", "capability", "history"] {
            let mut got: Vec<&str> = obj[var]
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            got.sort_unstable();
            let mut want = fields_of(var).expect("known").to_vec();
            want.sort_unstable();
            assert_eq!(got, want, "{var}");
        }
    }

    #[test]
    fn activation_exposes_values() {
        let env = Arc::new(Env::stdlib());
        let mut ctx = Context {
            session_id: 7,
            ..Context::default()
        };
        ctx.capability.dangerous_count = 3;
        ctx.history.opened_deleted_path = true;
        ctx.execution.container_runtime_in_chain = true;
        let act = activation(&env, &ctx);
        for (expr, want) in [
            ("session_id == 7", true),
            ("capability.dangerous_count >= 3", true),
            ("history.opened_deleted_path", true),
            ("history.burst_open", false),
            ("execution.container_runtime_in_chain", true),
            ("!capability.seccomp_disabled", true),
        ] {
            let program = compile(&env, expr).expect("compiles");
            assert_eq!(execute(&program, &act), Ok(Value::Bool(want)), "{expr}");
        }
        let program = compile(&env, "has(capability.capability_unknown)").expect("compiles");
        assert_eq!(execute(&program, &act), Ok(Value::Bool(false)));
    }

    #[test]
    fn activation_exposes_exactly_the_fields_of_the_definition() {
        let env = Arc::new(Env::stdlib());
        let base = activation(&env, &Context::default());
        let eval = |expr: &str, act: &cel::Context<'_, '_>| {
            let program = compile(&env, expr).expect("compiles");
            assert_eq!(check_references(&program), None, "{expr}");
            execute(&program, act)
        };
        for g in Context::GROUPS {
            let expr = format!("size({}) == {}", g.name, g.fields.len());
            assert_eq!(eval(&expr, &base), Ok(Value::Bool(true)), "{expr}");
            for f in g.fields {
                let ctx: Context = serde_json::from_value(f.positive_fixture()).expect("fixture");
                let act = activation(&env, &ctx);
                let expr = f.positive_expr();
                assert_eq!(eval(&expr, &act), Ok(Value::Bool(true)), "{expr}");
                assert_eq!(eval(&expr, &base), Ok(Value::Bool(false)), "{expr}");
                let cel_type = f.kind.cel_type().split('(').next().unwrap_or_default();
                let expr = format!("type({}) == {cel_type}", f.path);
                assert_eq!(eval(&expr, &base), Ok(Value::Bool(true)), "{expr}");
            }
        }
        assert_eq!(eval("session_id == 0", &base), Ok(Value::Bool(true)));
        let names: Vec<&str> = Context::GROUPS.iter().map(|g| g.name).collect();
        assert_eq!(VARIABLES[..names.len()], names[..]);
        assert_eq!(VARIABLES.len(), names.len() + 1);
    }

    #[test]
    fn string_list_fields_become_cel_lists() {
        let env = Arc::new(Env::stdlib());
        let items = vec!["a".to_owned(), "b".to_owned()];
        let mut act = cel::Context::with_env(Arc::clone(&env));
        act.add_variable_as_val("l", cel_value(FieldValue::StrList(&items)));
        for expr in ["size(l) == 2", "'b' in l", "l[0] == 'a'"] {
            let program = compile(&env, expr).expect("compiles");
            assert_eq!(execute(&program, &act), Ok(Value::Bool(true)), "{expr}");
        }
    }

    #[test]
    fn bits() {
        let mut a: RuleBits = [0, 3, 64, 130].into_iter().collect();
        assert_eq!(a.len(), 4);
        assert!(a.contains(64) && !a.contains(1) && !a.contains(1000));
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 3, 64, 130]);
        let b: RuleBits = [3, 130, 200].into_iter().collect();
        assert_eq!(a.difference(&b).iter().collect::<Vec<_>>(), vec![0, 64]);
        a.union_with(&b);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![0, 3, 64, 130, 200]);
        a.remove(200);
        a.remove(5000);
        assert_eq!(a.len(), 4);
        a.clear();
        assert!(a.is_empty());
        assert_eq!(a, RuleBits::new());
        let mut c: RuleBits = [100].into_iter().collect();
        c.remove(100);
        assert_eq!(c, RuleBits::new());
        assert_eq!(b.difference(&b), RuleBits::new());
        assert_eq!(format!("{:?}", b), "{3, 130, 200}");
    }
}
