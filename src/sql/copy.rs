//! `COPY ... FROM STDIN` and `COPY ... TO STDOUT`: the command's parsing, and the text and
//! CSV formats of the data stream.

use super::error::SqlError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFormat {
    Text,
    Csv,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyOptions {
    pub format: CopyFormat,
    pub delimiter: char,
    pub null: String,
    pub header: bool,
    pub quote: char,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    Table { table: String, columns: Vec<String> },
    Query(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCommand {
    pub source: CopySource,
    pub from_stdin: bool,
    pub options: CopyOptions,
}

/// Parses a COPY command; `None` if `sql` is not one.
pub fn parse_copy(sql: &str) -> Option<Result<CopyCommand, SqlError>> {
    let trimmed = sql.trim().trim_end_matches(';').trim();
    let rest = strip_keyword(trimmed, "copy")?;
    Some(parse_after_copy(rest))
}

fn strip_keyword<'a>(text: &'a str, keyword: &str) -> Option<&'a str> {
    let head = text.get(..keyword.len())?;
    if head.eq_ignore_ascii_case(keyword)
        && text[keyword.len()..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || c == '(')
    {
        Some(text[keyword.len()..].trim_start())
    } else {
        None
    }
}

/// Splits off a parenthesised group at the start of `text`, honouring quotes.
fn take_parenthesised(text: &str) -> Option<(&str, &str)> {
    if !text.starts_with('(') {
        return None;
    }
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth -= 1;
                if depth == 0 {
                    return Some((&text[1..i], text[i + 1..].trim_start()));
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote_ident(name: &str) -> String {
    let name = name.trim();
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => name.to_ascii_lowercase(),
    }
}

fn unquote_literal(value: &str) -> Result<String, SqlError> {
    let value = value.trim();
    let inner = value
        .strip_prefix("E'")
        .or_else(|| value.strip_prefix("e'"))
        .or_else(|| value.strip_prefix('\''))
        .and_then(|v| v.strip_suffix('\''))
        .ok_or_else(|| SqlError::InvalidCopy(format!("expected a quoted string, got {value}")))?;
    let unescaped = inner.replace("''", "'");
    Ok(if value.starts_with(['E', 'e']) {
        unescaped
            .replace("\\t", "\t")
            .replace("\\n", "\n")
            .replace("\\\\", "\\")
    } else {
        unescaped
    })
}

fn parse_after_copy(rest: &str) -> Result<CopyCommand, SqlError> {
    let (source, rest) = if let Some((query, rest)) = take_parenthesised(rest) {
        (CopySource::Query(query.trim().to_string()), rest)
    } else {
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '(')
            .unwrap_or(rest.len());
        let name = &rest[..end];
        let table = unquote_ident(name.rsplit('.').next().unwrap_or(name));
        let rest = rest[end..].trim_start();
        let (columns, rest) = match take_parenthesised(rest) {
            Some((cols, rest)) => (cols.split(',').map(unquote_ident).collect::<Vec<_>>(), rest),
            None => (Vec::new(), rest),
        };
        (CopySource::Table { table, columns }, rest)
    };
    let (from_stdin, rest) = if let Some(r) = strip_keyword(rest, "from") {
        (true, r)
    } else if let Some(r) = strip_keyword(rest, "to") {
        (false, r)
    } else {
        return Err(SqlError::Syntax(
            "COPY needs FROM STDIN or TO STDOUT".into(),
        ));
    };
    let endpoint = if from_stdin { "stdin" } else { "stdout" };
    let rest = strip_keyword(rest, endpoint).ok_or_else(|| {
        SqlError::Unsupported(format!(
            "COPY only supports {} (files on the server are not reachable)",
            endpoint.to_ascii_uppercase()
        ))
    })?;
    let rest = strip_keyword(rest, "with").unwrap_or(rest);
    let options_text = match take_parenthesised(rest) {
        Some((inner, _)) => inner.to_string(),
        None => rest.to_string(),
    };
    let options = parse_options(&options_text)?;
    Ok(CopyCommand {
        source,
        from_stdin,
        options,
    })
}

fn parse_options(text: &str) -> Result<CopyOptions, SqlError> {
    let mut options = CopyOptions {
        format: CopyFormat::Text,
        delimiter: '\t',
        null: "\\N".into(),
        header: false,
        quote: '"',
    };
    let mut delimiter_set = false;
    let mut null_set = false;
    // Options are `name [value]`, separated by commas (new syntax) or spaces (old syntax).
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_quote = false;
    for c in text.chars() {
        match c {
            '\'' => {
                in_quote = !in_quote;
                current.push(c);
            }
            ',' | ' ' | '\t' | '\n' if !in_quote => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    let mut i = 0;
    while i < words.len() {
        let word = words[i].to_ascii_lowercase();
        let value = words.get(i + 1).cloned();
        let takes_value = |v: &Option<String>| {
            v.as_ref()
                .is_some_and(|v| v.starts_with('\'') || v.starts_with("E'") || !is_option_name(v))
        };
        match word.as_str() {
            "format" => {
                // asyncpg quotes the format name: FORMAT 'csv'.
                let v = value
                    .unwrap_or_default()
                    .trim_matches(['\'', '"'])
                    .to_ascii_lowercase();
                options.format = match v.as_str() {
                    "text" => CopyFormat::Text,
                    "csv" => CopyFormat::Csv,
                    other => {
                        return Err(SqlError::Unsupported(format!(
                            "COPY format {other} is not supported (use text or csv)"
                        )));
                    }
                };
                i += 2;
            }
            "csv" => {
                options.format = CopyFormat::Csv;
                i += 1;
            }
            "binary" => {
                return Err(SqlError::Unsupported(
                    "COPY binary format is not supported (use text or csv)".into(),
                ));
            }
            "delimiter" => {
                let v = unquote_literal(&value.unwrap_or_default())?;
                options.delimiter = v.chars().next().unwrap_or('\t');
                delimiter_set = true;
                i += 2;
            }
            "null" => {
                options.null = unquote_literal(&value.unwrap_or_default())?;
                null_set = true;
                i += 2;
            }
            "quote" => {
                let v = unquote_literal(&value.unwrap_or_default())?;
                options.quote = v.chars().next().unwrap_or('"');
                i += 2;
            }
            "header" | "freeze" => {
                let on = if takes_value(&value) {
                    i += 2;
                    value
                        .as_deref()
                        .and_then(super::rewrite::parse_bool)
                        .unwrap_or(true)
                } else {
                    i += 1;
                    true
                };
                if word == "header" {
                    options.header = on;
                }
            }
            "encoding" | "escape" | "force_quote" | "force_not_null" | "force_null" => {
                i += 2;
            }
            other => {
                return Err(SqlError::Syntax(format!(
                    "COPY option \"{other}\" not recognized"
                )));
            }
        }
    }
    if options.format == CopyFormat::Csv {
        if !delimiter_set {
            options.delimiter = ',';
        }
        if !null_set {
            options.null = String::new();
        }
    }
    Ok(options)
}

fn is_option_name(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "format"
            | "csv"
            | "binary"
            | "delimiter"
            | "null"
            | "quote"
            | "header"
            | "freeze"
            | "encoding"
            | "escape"
            | "force_quote"
            | "force_not_null"
            | "force_null"
    )
}

/// Splits one line of COPY data into fields; `None` marks a NULL.
pub fn split_line(line: &str, options: &CopyOptions) -> Vec<Option<String>> {
    match options.format {
        CopyFormat::Text => line
            .split(options.delimiter)
            .map(|field| {
                if field == options.null {
                    None
                } else {
                    Some(unescape_text(field))
                }
            })
            .collect(),
        CopyFormat::Csv => split_csv(line, options),
    }
}

fn unescape_text(field: &str) -> String {
    if !field.contains('\\') {
        return field.to_string();
    }
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('f') => out.push('\u{c}'),
            Some('v') => out.push('\u{b}'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

fn split_csv(line: &str, options: &CopyOptions) -> Vec<Option<String>> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut was_quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if quoted {
            if c == options.quote {
                if chars.peek() == Some(&options.quote) {
                    current.push(c);
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                current.push(c);
            }
        } else if c == options.quote {
            quoted = true;
            was_quoted = true;
        } else if c == options.delimiter {
            fields.push(csv_field(std::mem::take(&mut current), was_quoted, options));
            was_quoted = false;
        } else {
            current.push(c);
        }
    }
    fields.push(csv_field(current, was_quoted, options));
    fields
}

fn csv_field(value: String, was_quoted: bool, options: &CopyOptions) -> Option<String> {
    if !was_quoted && value == options.null {
        None
    } else {
        Some(value)
    }
}

/// Formats one row of COPY TO output.
pub fn format_line(fields: &[Option<String>], options: &CopyOptions) -> String {
    let mut line = String::new();
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            line.push(options.delimiter);
        }
        match (field, options.format) {
            (None, _) => line.push_str(&options.null),
            (Some(v), CopyFormat::Text) => {
                for c in v.chars() {
                    match c {
                        '\\' => line.push_str("\\\\"),
                        '\t' => line.push_str("\\t"),
                        '\n' => line.push_str("\\n"),
                        '\r' => line.push_str("\\r"),
                        c if c == options.delimiter => {
                            line.push('\\');
                            line.push(c);
                        }
                        c => line.push(c),
                    }
                }
            }
            (Some(v), CopyFormat::Csv) => {
                let needs_quotes = v.is_empty()
                    || v.contains(options.delimiter)
                    || v.contains(options.quote)
                    || v.contains(['\n', '\r']);
                if needs_quotes {
                    line.push(options.quote);
                    for c in v.chars() {
                        if c == options.quote {
                            line.push(c);
                        }
                        line.push(c);
                    }
                    line.push(options.quote);
                } else {
                    line.push_str(v);
                }
            }
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgbench_copy_forms() {
        let c = parse_copy("copy pgbench_accounts from stdin with (freeze on)")
            .unwrap()
            .unwrap();
        assert_eq!(
            c.source,
            CopySource::Table {
                table: "pgbench_accounts".into(),
                columns: vec![]
            }
        );
        assert!(c.from_stdin);
        assert_eq!(c.options.format, CopyFormat::Text);
        let c = parse_copy("COPY t (a, \"B\") FROM STDIN WITH (FORMAT csv, HEADER true, NULL 'x')")
            .unwrap()
            .unwrap();
        assert_eq!(
            c.source,
            CopySource::Table {
                table: "t".into(),
                columns: vec!["a".into(), "B".into()]
            }
        );
        assert_eq!(c.options.format, CopyFormat::Csv);
        assert!(c.options.header);
        assert_eq!(c.options.null, "x");
        let c = parse_copy("copy (select 1) to stdout csv header")
            .unwrap()
            .unwrap();
        assert_eq!(c.source, CopySource::Query("select 1".into()));
        assert!(matches!(
            parse_copy("copy t from '/etc/passwd'"),
            Some(Err(SqlError::Unsupported(_)))
        ));
        assert!(parse_copy("select 1").is_none());
    }

    #[test]
    fn text_and_csv_fields() {
        let text = parse_options("").unwrap();
        assert_eq!(
            split_line("1\t\\N\ta\\tb", &text),
            vec![Some("1".into()), None, Some("a\tb".into())]
        );
        assert_eq!(
            parse_options("format 'csv'").unwrap().format,
            CopyFormat::Csv
        );
        let csv = parse_options("format csv").unwrap();
        assert_eq!(
            split_line("1,,\"a,\"\"b\"\"\",\"\"", &csv),
            vec![
                Some("1".into()),
                None,
                Some("a,\"b\"".into()),
                Some("".into())
            ]
        );
        assert_eq!(format_line(&[Some("a,b".into()), None], &csv), "\"a,b\",\n");
        assert_eq!(
            format_line(&[Some("a\tb".into()), None], &text),
            "a\\tb\t\\N\n"
        );
    }
}

/// COPY commands and data lines are client text: any of it parses or fails, never panics.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_copy_command_parses_or_fails(
            head in prop_oneof![Just("COPY "), Just("copy t "), Just("COPY t (a, b) FROM STDIN "), Just("COPY (SELECT 1) TO STDOUT ")],
            tail in "[ -~\\t\\n(),'\"éE]{0,60}",
        ) {
            let _ = parse_copy(&format!("{head}{tail}"));
        }

        #[test]
        fn any_data_line_splits(
            line in any::<String>(),
            csv in any::<bool>(),
            delimiter in prop_oneof![Just(','), Just('\t'), Just('|'), any::<char>()],
            quote in prop_oneof![Just('"'), any::<char>()],
            null in prop_oneof![Just(String::new()), Just("\\N".to_string()), any::<String>()],
        ) {
            let options = CopyOptions {
                format: if csv { CopyFormat::Csv } else { CopyFormat::Text },
                delimiter,
                null,
                header: false,
                quote,
            };
            let fields = split_line(&line, &options);
            prop_assert!(!fields.is_empty());
        }
    }
}
