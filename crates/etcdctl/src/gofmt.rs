//! Go's text conventions that etcdctl's output is made of: `%q` quoting and its inverse,
//! `strconv` parse errors, `time.Duration` and `go-humanize` byte sizes, JSON strings as
//! `encoding/json` writes them, and duration flags as `time.ParseDuration` reads them.
//!
//! Everything here is pure and total: any input gives a value or an error, never a panic.

use std::fmt::Write as _;
use std::time::Duration;

use base64::Engine as _;

/// Go's `strconv.Quote` of `bytes` (what `%q` prints for a string or `[]byte`):
/// printable characters as they are, the usual backslash escapes, invalid UTF-8 as `\xHH`.
///
/// ```
/// assert_eq!(etcd_ctl::gofmt::quote(b"a\"b\n\xff"), r#""a\"b\n\xff""#);
/// ```
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            quote_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

fn quote_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x80 => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// An approximation of Go's `strconv.IsPrint`: exact for ASCII; beyond it, everything but
/// control, space-separator, format and private-use characters counts as printable
/// (Go also escapes unassigned code points, which needs Unicode tables we do not carry).
fn is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format_chars = matches!(
        u,
        0xad | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x180e
            | 0x200b..=0x200f
            | 0x202a..=0x202e
            | 0x2060..=0x2064
            | 0x2066..=0x206f
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xe0001
            | 0xe0020..=0xe007f
    );
    let private_use = matches!(u, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd);
    let non_characters = (u & 0xfffe) == 0xfffe || (0xfdd0..=0xfdef).contains(&u);
    !(format_chars || private_use || non_characters)
}

/// Go's `strconv.Unquote` for a double-quoted (`"..."`) or back-quoted (`` `...` ``)
/// string literal, as `fmt.Sscanf("%q")` and etcdctl's txn parser read them.
pub fn unquote(literal: &str) -> Result<Vec<u8>, String> {
    let syntax = || "invalid syntax".to_string();
    if let Some(body) = literal
        .strip_prefix('`')
        .and_then(|rest| rest.strip_suffix('`'))
    {
        if body.contains('`') {
            return Err(syntax());
        }
        return Ok(body.replace('\r', "").into_bytes());
    }
    let body = literal
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .ok_or_else(syntax)?;
    let mut out = Vec::with_capacity(body.len());
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\n' => return Err(syntax()),
            '\\' => {
                let escape = chars.next().ok_or_else(syntax)?;
                match escape {
                    'a' => out.push(7),
                    'b' => out.push(8),
                    'f' => out.push(12),
                    'n' => out.push(b'\n'),
                    'r' => out.push(b'\r'),
                    't' => out.push(b'\t'),
                    'v' => out.push(11),
                    '\\' => out.push(b'\\'),
                    '"' => out.push(b'"'),
                    'x' => {
                        let value = take_digits(&mut chars, 2, 16).ok_or_else(syntax)?;
                        out.push(u8::try_from(value).map_err(|_| syntax())?);
                    }
                    '0'..='7' => {
                        let rest = take_digits(&mut chars, 2, 8).ok_or_else(syntax)?;
                        let value = (escape as u32 - '0' as u32) * 64 + rest;
                        out.push(u8::try_from(value).map_err(|_| syntax())?);
                    }
                    'u' | 'U' => {
                        let width = if escape == 'u' { 4 } else { 8 };
                        let value = take_digits(&mut chars, width, 16).ok_or_else(syntax)?;
                        let c = char::from_u32(value).ok_or_else(syntax)?;
                        let mut buf = [0u8; 4];
                        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    }
                    _ => return Err(syntax()),
                }
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    Ok(out)
}

fn take_digits(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    count: usize,
    radix: u32,
) -> Option<u32> {
    let mut value = 0u32;
    for _ in 0..count {
        let digit = chars.next()?.to_digit(radix)?;
        value = value.checked_mul(radix)?.checked_add(digit)?;
    }
    Some(value)
}

/// Go's `strconv.ParseUint(text, base, 64)`, with Go's error text
/// (`strconv.ParseUint: parsing "zz": invalid syntax`).
pub fn parse_uint(text: &str, base: u32) -> Result<u64, String> {
    parse_unsigned(text, base).map_err(|kind| num_error("ParseUint", text, kind))
}

/// Go's `strconv.ParseInt(text, base, 64)`, with Go's error text.
pub fn parse_int(text: &str, base: u32) -> Result<i64, String> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'+') => (false, &text[1..]),
        Some(b'-') => (true, &text[1..]),
        _ => (false, text),
    };
    let magnitude =
        parse_unsigned(digits, base).map_err(|kind| num_error("ParseInt", text, kind))?;
    let limit = 1u64 << 63;
    if negative {
        if magnitude > limit {
            return Err(num_error("ParseInt", text, NumError::Range));
        }
        Ok(0i64.wrapping_sub_unsigned(magnitude))
    } else {
        i64::try_from(magnitude).map_err(|_| num_error("ParseInt", text, NumError::Range))
    }
}

#[derive(Debug, Clone, Copy)]
enum NumError {
    Syntax,
    Range,
}

fn parse_unsigned(text: &str, base: u32) -> Result<u64, NumError> {
    if text.is_empty() {
        return Err(NumError::Syntax);
    }
    let mut value = 0u64;
    for c in text.chars() {
        let digit = c.to_digit(base).ok_or(NumError::Syntax)?;
        value = value
            .checked_mul(u64::from(base))
            .and_then(|v| v.checked_add(u64::from(digit)))
            .ok_or(NumError::Range)?;
    }
    Ok(value)
}

fn num_error(func: &str, text: &str, kind: NumError) -> String {
    let what = match kind {
        NumError::Syntax => "invalid syntax",
        NumError::Range => "value out of range",
    };
    format!("strconv.{func}: parsing {}: {what}", quote(text.as_bytes()))
}

/// Go's `strconv.ParseBool`.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            quote(text.as_bytes())
        )),
    }
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units (`ns`, `us`, `µs`,
/// `ms`, `s`, `m`, `h`), e.g. `2s`, `1m30s`, `500ms`; `0` alone. Negative durations are
/// refused (etcdctl has no use for them).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {}", quote(text.as_bytes()));
    let rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut rest = rest;
    let mut total_ns: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit_ns: u128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" if !number.is_empty() => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    quote(text.as_bytes())
                ))
            }
            unit if !number.is_empty() => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(unit.as_bytes()),
                    quote(text.as_bytes())
                ))
            }
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut part = whole.checked_mul(unit_ns).ok_or_else(bad)?;
        let mut scale = unit_ns;
        for digit in fraction.chars() {
            let digit = u128::from(digit.to_digit(10).ok_or_else(bad)?);
            scale /= 10;
            part += digit * scale;
        }
        total_ns = total_ns.checked_add(part).ok_or_else(bad)?;
    }
    let total_ns = u64::try_from(total_ns).map_err(|_| bad())?;
    Ok(Duration::from_nanos(total_ns))
}

/// Go's `time.Duration.String()`: `1.234567ms`, `2.5s`, `1m30s`, `0s`.
pub fn duration_string(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_string();
    }
    if ns < 1_000 {
        return format!("{ns}ns");
    }
    if ns < 1_000_000 {
        return format!("{}µs", fraction(ns, 1_000));
    }
    if ns < 1_000_000_000 {
        return format!("{}ms", fraction(ns, 1_000_000));
    }
    let hours = ns / 3_600_000_000_000;
    let minutes = (ns / 60_000_000_000) % 60;
    let secs_ns = ns % 60_000_000_000;
    let mut out = String::new();
    if hours > 0 {
        let _ = write!(out, "{hours}h");
    }
    if hours > 0 || minutes > 0 {
        let _ = write!(out, "{minutes}m");
    }
    let _ = write!(out, "{}s", fraction(secs_ns, 1_000_000_000));
    out
}

/// `value / unit` in decimal with trailing zeros of the fraction dropped.
fn fraction(value: u128, unit: u128) -> String {
    let whole = value / unit;
    let rest = value % unit;
    if rest == 0 {
        return whole.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// `go-humanize`'s `Bytes`: SI sizes as etcdctl prints the db size (`20 kB`, `1.2 MB`).
pub fn humanize_bytes(size: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if size < 10 {
        return format!("{size} B");
    }
    let size_f = size as f64;
    let exponent = (size_f.ln() / 1000f64.ln()).floor();
    let index = (exponent as usize).min(UNITS.len() - 1);
    let value = (size_f / 1000f64.powi(index as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[index])
    } else {
        format!("{value:.0} {}", UNITS[index])
    }
}

/// A string as Go's `encoding/json` writes it: quoted, with `<`, `>`, `&`, U+2028 and
/// U+2029 escaped as `\u00XX`/`\u20XX`, control characters as `\n`, `\r`, `\t` or `\u00XX`.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Bytes as Go's `encoding/json` writes a `[]byte`: standard base64 with padding, quoted.
pub fn json_bytes(bytes: &[u8]) -> String {
    format!(
        "\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// `fmt.Sprintf("%016x", id)` for a signed lease ID (Go puts the sign before the zeros).
pub fn lease_hex(id: i64) -> String {
    if id < 0 {
        format!("-{:015x}", id.unsigned_abs())
    } else {
        format!("{id:016x}")
    }
}

/// etcdctl's `--hex` form of bytes: every byte as `\xHH`.
pub fn hex_escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        let _ = write!(out, "\\x{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_matches_go() {
        assert_eq!(quote(b"foo"), "\"foo\"");
        assert_eq!(quote(b""), "\"\"");
        assert_eq!(quote(b"a b\t\"\\"), r#""a b\t\"\\""#);
        assert_eq!(quote(b"\x00\x7f"), r#""\x00\x7f""#);
        assert_eq!(quote("héllo 世界".as_bytes()), "\"héllo 世界\"");
        assert_eq!(quote(b"\xe4\xb8"), r#""\xe4\xb8""#);
        assert_eq!(quote("\u{a0}\u{200b}".as_bytes()), r#""\u00a0\u200b""#);
        assert_eq!(quote("\u{f0000}".as_bytes()), r#""\U000f0000""#);
    }

    #[test]
    fn unquote_reads_go_literals() {
        assert_eq!(unquote(r#""a\"b\n""#).unwrap(), b"a\"b\n");
        assert_eq!(unquote(r#""\x41\101\u4e16""#).unwrap(), "AA世".as_bytes());
        assert_eq!(unquote("`raw\\n`").unwrap(), b"raw\\n");
        for bad in [
            "\"abc",
            "abc",
            r#""\q""#,
            r#""\x4""#,
            r#""\777""#,
            r#""\'""#,
            "\"",
            "",
        ] {
            assert!(unquote(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parse_int_has_go_errors() {
        assert_eq!(parse_int("1f", 16), Ok(31));
        assert_eq!(parse_int("-1f", 16), Ok(-31));
        assert_eq!(parse_int("+7fffffffffffffff", 16), Ok(i64::MAX));
        assert_eq!(parse_int("-8000000000000000", 16), Ok(i64::MIN));
        assert_eq!(
            parse_int("zz", 16),
            Err(r#"strconv.ParseInt: parsing "zz": invalid syntax"#.to_string())
        );
        assert_eq!(
            parse_int("8000000000000000", 16),
            Err(r#"strconv.ParseInt: parsing "8000000000000000": value out of range"#.to_string())
        );
        assert!(parse_int("", 10).is_err());
        assert!(parse_int("-", 10).is_err());
        assert_eq!(
            parse_uint("-1", 16),
            Err(r#"strconv.ParseUint: parsing "-1": invalid syntax"#.to_string())
        );
        assert_eq!(parse_uint("ffffffffffffffff", 16), Ok(u64::MAX));
    }

    #[test]
    fn durations_parse_and_print_as_go() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["", "5", "s", "1x", "-1s", ".s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_duration("2x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"2x\""
        );
        assert_eq!(
            parse_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_duration("s").unwrap_err(),
            "time: invalid duration \"s\""
        );
        assert_eq!(
            duration_string(Duration::from_nanos(1_244_975)),
            "1.244975ms"
        );
        assert_eq!(duration_string(Duration::from_nanos(999)), "999ns");
        assert_eq!(duration_string(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(duration_string(Duration::from_micros(15)), "15µs");
        assert_eq!(duration_string(Duration::from_millis(2500)), "2.5s");
        assert_eq!(duration_string(Duration::from_secs(90)), "1m30s");
        assert_eq!(duration_string(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(duration_string(Duration::ZERO), "0s");
    }

    #[test]
    fn humanized_sizes_match_go_humanize() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(20480), "20 kB");
        assert_eq!(humanize_bytes(581632), "582 kB");
        assert_eq!(humanize_bytes(1_234_567), "1.2 MB");
        assert_eq!(humanize_bytes(u64::MAX), "18 EB");
    }

    #[test]
    fn json_strings_escape_as_go() {
        assert_eq!(
            json_string("a<b>&\"\n\u{1}"),
            r#""a\u003cb\u003e\u0026\"\n\u0001""#
        );
        assert_eq!(json_bytes(b"foo"), "\"Zm9v\"");
        assert_eq!(json_bytes(b""), "\"\"");
    }

    #[test]
    fn ids_print_as_go() {
        assert_eq!(lease_hex(0x2040a201ec0f0a15), "2040a201ec0f0a15");
        assert_eq!(lease_hex(1), "0000000000000001");
        assert_eq!(lease_hex(-1), "-000000000000001");
        assert_eq!(hex_escaped(b"a1"), "\\x61\\x31");
    }
}
