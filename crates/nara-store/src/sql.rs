//! A small builder for SQL whose shape depends on the request (optional
//! filters), producing `$n` placeholders that SQLite and PostgreSQL both accept.

/// A value to bind to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    OptText(Option<String>),
    Int(i64),
    OptInt(Option<i64>),
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
