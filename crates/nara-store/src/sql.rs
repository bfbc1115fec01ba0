//! A small builder for SQL whose shape depends on the request (optional
//! filters), producing `$n` placeholders that SQLite and PostgreSQL both accept.

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
}

impl Sql {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            args: Vec::new(),
        }
    }

    /// A fixed statement whose `$1…$n` are `args`, in order.
    pub fn with_args(text: &str, args: Vec<Arg>) -> Self {
        Self {
            text: text.to_owned(),
            args,
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
    }
}
