//! A small builder for SQL whose shape depends on the request (optional
//! filters), producing `$n` placeholders that SQLite and PostgreSQL both accept.
//!
//! SQLite is handed the same statement with anonymous `?` placeholders
//! ([`query`]): it looks a named parameter (`$n`) up by walking a list of
//! every name on each bind, so binding a 32-row insert of 30 columns cost
//! half a million steps — 4% of a node's CPU under the decision API's load
//! (`benches/algorithms.rs`) — where `?` binds by position alone.

use std::sync::OnceLock;

/// A value to bind to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
    Float(f64),
    Bytes(Vec<u8>),
}

#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
    /// `text` with `?` for `$1…$n`, made once when SQLite first runs it.
    positional: OnceLock<Option<String>>,
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
            positional: OnceLock::new(),
        }
    }

    /// A fixed statement whose `$1…$n` are `args`, in order.
    pub fn with_args(text: &str, args: Vec<Arg>) -> Self {
        Self {
            text: text.to_owned(),
            args,
            positional: OnceLock::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `arg`.
    pub fn bind(&mut self, arg: Arg) -> &mut Self {
        self.args.push(arg);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// The statement as SQLite is given it: `?` for each placeholder when
    /// they run `$1…$n` in order, each once (what [`Sql::bind`] writes);
    /// otherwise the text as it is (numbered, slower to bind, still right).
    fn positional_text(&self) -> &str {
        self.positional
            .get_or_init(|| positional(&self.text, self.args.len()))
            .as_deref()
            .unwrap_or(&self.text)
    }

    /// Starts or continues a WHERE clause.
    pub fn and(&mut self) -> &mut Self {
        if self.text.contains(" WHERE ") {
            self.push(" AND ")
        } else {
            self.push(" WHERE ")
        }
    }
}

/// A LIKE pattern matching `needle` anywhere, with LIKE's wildcards escaped
/// (the query says `ESCAPE '\'`), so `%` and `_` in a search are literal.
/// Splits `n` rows into chunks of 256, 32, 4 and 1 rows. Multi-row inserts
/// save round trips (sqlx runs each SQLite statement on the connection's
/// worker thread), and with few distinct chunk sizes the statements stay in
/// the prepared-statement cache instead of being prepared per batch size.
pub(crate) fn chunk_sizes(mut n: usize) -> Vec<usize> {
    let mut out = Vec::new();
    for size in [256, 32, 4, 1] {
        while n >= size {
            out.push(size);
            n -= size;
        }
    }
    out
}

/// Cuts `items` by [`chunk_sizes`].
pub(crate) fn chunks<T>(items: &[T]) -> Vec<&[T]> {
    let mut rest = items;
    chunk_sizes(items.len())
        .into_iter()
        .map(|size| {
            let (head, tail) = rest.split_at(size);
            rest = tail;
            head
        })
        .collect()
}

pub(crate) fn contains_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// `text` with `$1…$n` replaced by `?`, or `None` unless the placeholders
/// outside quoted literals and identifiers are exactly `$1…$n` in order.
fn positional(text: &str, n: usize) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut next, mut i, mut copied) = (1usize, 0usize, 0usize);
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            // A doubled quote inside a literal closes and reopens it: the
            // same state either way.
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b'$' => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|d| d.is_ascii_digit())
                    .count();
                let number: usize = text.get(i + 1..i + 1 + digits)?.parse().ok()?;
                if number != next {
                    return None;
                }
                out.push_str(&text[copied..i]);
                out.push('?');
                next += 1;
                i += digits;
                copied = i + 1;
            }
            None => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    (quote.is_none() && next == n + 1).then_some(out)
}

/// A backend's way of writing an [`Sql`]'s placeholders.
pub(crate) trait Dialect: sqlx::Database {
    fn statement(sql: &Sql) -> &str;
}

impl Dialect for sqlx::Sqlite {
    fn statement(sql: &Sql) -> &str {
        sql.positional_text()
    }
}

impl Dialect for sqlx::Postgres {
    fn statement(sql: &Sql) -> &str {
        &sql.text
    }
}

/// `sqlx::query` of `sql`, in the placeholders of the backend it runs on
/// (inferred from the executor, as `sqlx::query`'s is).
pub(crate) fn query<DB: Dialect>(sql: &Sql) -> sqlx::query::Query<'_, DB, DB::Arguments<'_>> {
    sqlx::query(DB::statement(sql))
}

/// `sqlx::query_as` of `sql`, as [`query`].
pub(crate) fn query_as<DB: Dialect, O>(
    sql: &Sql,
) -> sqlx::query::QueryAs<'_, DB, O, DB::Arguments<'_>>
where
    O: for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_as(DB::statement(sql))
}

/// `sqlx::query_scalar` of `sql`, as [`query`].
pub(crate) fn query_scalar<DB: Dialect, O>(
    sql: &Sql,
) -> sqlx::query::QueryScalar<'_, DB, O, DB::Arguments<'_>>
where
    (O,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    sqlx::query_scalar(DB::statement(sql))
}

/// Binds every argument of `$sql` to the sqlx query `$q`, for any backend.
macro_rules! bind_args {
    ($q:expr, $sql:expr) => {{
        let mut q = $q;
        for arg in &$sql.args {
            q = match arg {
                $crate::sql::Arg::Text(s) => q.bind(s.as_str()),
                $crate::sql::Arg::OptText(s) => q.bind(s.as_deref()),
                $crate::sql::Arg::Int(i) => q.bind(*i),
                $crate::sql::Arg::OptInt(i) => q.bind(*i),
                $crate::sql::Arg::Float(f) => q.bind(*f),
                $crate::sql::Arg::Bytes(b) => q.bind(b.as_slice()),
            };
        }
        q
    }};
}
pub(crate) use bind_args;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_every_row_in_few_sizes() {
        for n in [0, 1, 3, 4, 31, 33, 256, 300, 1000] {
            let sizes = chunk_sizes(n);
            assert_eq!(sizes.iter().sum::<usize>(), n);
            assert!(sizes.iter().all(|s| [256, 32, 4, 1].contains(s)));
        }
        let v: Vec<u32> = (0..37).collect();
        let flat: Vec<u32> = chunks(&v).concat();
        assert_eq!(flat, v);
    }

    #[test]
    fn escapes_like_wildcards() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }

    #[test]
    fn numbers_placeholders_in_order() {
        let mut s = Sql::new("SELECT 1 FROM t");
        s.and().push("a = ").bind(Arg::Int(1));
        s.and().push("b = ").bind(Arg::Text("x".into()));
        assert_eq!(s.text, "SELECT 1 FROM t WHERE a = $1 AND b = $2");
        assert_eq!(s.positional_text(), "SELECT 1 FROM t WHERE a = ? AND b = ?");
    }

    #[test]
    fn only_placeholders_in_order_and_outside_quotes_become_positional() {
        let p = |t: &str, n| positional(t, n);
        assert_eq!(
            p("INSERT INTO t VALUES ($1, '$2 it''s', \"$x\", $2)", 2).as_deref(),
            Some("INSERT INTO t VALUES (?, '$2 it''s', \"$x\", ?)")
        );
        assert_eq!(p("SELECT $10", 10), None, "out of order");
        assert_eq!(p("a = $1 OR b = $1", 1), None, "used twice");
        assert_eq!(p("a = $2 AND b = $1", 2), None, "reordered");
        assert_eq!(p("a = $1", 2), None, "an argument unused");
        assert_eq!(p("a = '$1", 0), None, "an unclosed literal");
        assert_eq!(p("a = $", 0), None, "a dollar alone");
        assert_eq!(p("SELECT 1", 0).as_deref(), Some("SELECT 1"));
        let mut many = Sql::new("INSERT INTO t (a) VALUES ");
        for i in 0..300 {
            many.push(if i == 0 { "(" } else { ", (" })
                .bind(Arg::Int(i))
                .push(")");
        }
        assert_eq!(many.positional_text().matches('?').count(), 300);
        assert!(!many.positional_text().contains('$'));
    }
}
