//! `txn [-i]`: a transaction read from stdin in etcdctl's syntax.
//!
//! Three sections, each ended by an empty line: compares, success requests, failure
//! requests.
//!
//! ```text
//! mod("key1") > "0"
//!
//! put key1 "overwrote-key1"
//!
//! put key1 "created-key1"
//! put key2 "some extra key"
//!
//! ```
//!
//! A compare is `<target>("<key>") <op> "<value>"` with target `ver`/`version`,
//! `c`/`create`, `m`/`mod`, `val`/`value` or `lease` (hexadecimal, as etcdctl 3.6 reads
//! it; 3.5 crashes on it), op `=`, `!=`, `<` or `>`; keys and values are Go string
//! literals. A request is a `put`, `get` or `del` command line with its flags; its
//! words split as etcdctl's `argify` splits them (double-quoted Go literals,
//! single-quoted raw text, or bare words). Every line must end with a newline: input
//! that ends early fails with `Error: EOF` (exit 3), as in etcdctl.

use std::ffi::OsString;
use std::io::{BufRead, Read};

use clap::{Parser, Subcommand};
use etcd_proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::request_op::Request;
use etcd_proto::etcdserverpb::{Compare, RequestOp, TxnRequest};

use super::kv::{del_request, get_request, put_request};
use crate::cli::{DelArgs, GetArgs, PutArgs, TxnArgs};
use crate::error::{CtlError, ExitCode};
use crate::gofmt;
use crate::{emit, Env};

/// Longest line read from stdin (a transaction line holds a key and a value; etcd's
/// default request limit is 1.5 MiB).
const MAX_LINE_BYTES: usize = 64 << 20;

fn invalid(message: impl Into<String>) -> CtlError {
    CtlError::new(ExitCode::InvalidInput, message)
}

/// `txn [-i]`
pub async fn run(env: &Env, args: &TxnArgs) -> Result<(), CtlError> {
    if !args.args.is_empty() {
        return Err(CtlError::bad_args("txn command does not accept argument"));
    }
    let session = env.session()?;
    let request = {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        read_txn(&mut input, |prompt| {
            if args.interactive {
                emit(format!("{prompt}\n").as_bytes())
            } else {
                Ok(())
            }
        })?
    };
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            KvClient::new(conn.channel.clone())
                .txn(conn.request(request, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| e.exit(ExitCode::Error))?;
    emit(&session.printer.txn(&response)?)
}

/// Reads a whole transaction; `prompt` is called before each section (interactive mode
/// prints it).
pub fn read_txn(
    input: &mut impl BufRead,
    mut prompt: impl FnMut(&str) -> Result<(), CtlError>,
) -> Result<TxnRequest, CtlError> {
    prompt("compares:")?;
    let mut compare = Vec::new();
    while let Some(line) = read_section_line(input)? {
        compare.push(parse_compare(&line)?);
    }
    prompt("success requests (get, put, del):")?;
    let success = read_ops(input)?;
    prompt("failure requests (get, put, del):")?;
    let failure = read_ops(input)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn read_ops(input: &mut impl BufRead) -> Result<Vec<RequestOp>, CtlError> {
    let mut ops = Vec::new();
    while let Some(line) = read_section_line(input)? {
        ops.push(parse_request(&line)?);
    }
    Ok(ops)
}

/// The next line, trimmed; `None` for an empty line (the end of a section). A line
/// without its newline is `EOF`, as etcdctl's reader reports it.
fn read_section_line(input: &mut impl BufRead) -> Result<Option<Vec<u8>>, CtlError> {
    let mut line = Vec::new();
    input
        .by_ref()
        .take(MAX_LINE_BYTES as u64)
        .read_until(b'\n', &mut line)
        .map_err(|e| invalid(e.to_string()))?;
    if line.last() != Some(&b'\n') {
        if line.len() >= MAX_LINE_BYTES {
            return Err(invalid("line too long"));
        }
        return Err(invalid("EOF"));
    }
    let trimmed = line.trim_ascii();
    if trimmed.is_empty() {
        Ok(None)
    } else {
        Ok(Some(trimmed.to_vec()))
    }
}

/// Go's `\s` (RE2): space, tab, newline, form feed, carriage return.
fn is_go_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0c' | b'\r')
}

/// etcdctl's `argify`: the words of a line, as its regular expression
/// `"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?` finds them; double-quoted words are
/// read as Go string literals, single-quoted ones taken as they are.
pub fn argify(line: &[u8]) -> Result<Vec<Vec<u8>>, CtlError> {
    let mut words = Vec::new();
    let mut i = 0;
    while i < line.len() {
        let c = line[i];
        if c == b'"' {
            let mut j = i + 1;
            let mut closed = None;
            while j < line.len() {
                match line[j] {
                    b'\\' if j + 1 < line.len() && line[j + 1] != b'\n' => j += 2,
                    b'\\' => break,
                    b'"' => {
                        closed = Some(j);
                        break;
                    }
                    _ => j += 1,
                }
            }
            match closed {
                Some(end) => {
                    let literal = String::from_utf8_lossy(&line[i..=end]);
                    let word = gofmt::unquote(&literal).map_err(invalid)?;
                    words.push(word);
                    i = end + 1;
                }
                None => i += 1,
            }
        } else if c == b'\'' {
            match line[i + 1..].iter().position(|&b| b == b'\'') {
                Some(offset) => {
                    words.push(line[i + 1..i + 1 + offset].to_vec());
                    i += offset + 2;
                }
                None => i += 1,
            }
        } else if is_go_space(c) {
            i += 1;
        } else {
            let end = line[i..]
                .iter()
                .position(|&b| is_go_space(b))
                .map_or(line.len(), |offset| i + offset);
            words.push(line[i..end].to_vec());
            i = end;
        }
    }
    Ok(words)
}

/// A request line of a transaction, parsed as etcdctl parses `put`, `get` and `del`.
#[derive(Debug, Parser)]
#[command(
    no_binary_name = true,
    infer_subcommands = true,
    disable_help_subcommand = true
)]
struct TxnOpLine {
    #[command(subcommand)]
    op: TxnOp,
}

#[derive(Debug, Subcommand)]
enum TxnOp {
    Put(PutArgs),
    Get(GetArgs),
    Del(DelArgs),
}

fn to_os(word: Vec<u8>) -> OsString {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        OsString::from_vec(word)
    }
    #[cfg(not(unix))]
    {
        OsString::from(String::from_utf8_lossy(&word).into_owned())
    }
}

/// One success or failure request line.
pub fn parse_request(line: &[u8]) -> Result<RequestOp, CtlError> {
    let text = String::from_utf8_lossy(line);
    let words = argify(line)?;
    if words.len() < 2 {
        return Err(invalid(format!("invalid txn compare request: {text}")));
    }
    let parsed = TxnOpLine::try_parse_from(words.into_iter().map(to_os))
        .map_err(|_| invalid(format!("invalid txn request: {text}")))?;
    let request = match parsed.op {
        TxnOp::Put(args) => Request::RequestPut(put_request(&args, false)?),
        TxnOp::Get(args) => Request::RequestRange(get_request(&args)?),
        TxnOp::Del(args) => Request::RequestDeleteRange(del_request(&args)?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// A reader of the input as Go's `fmt.Sscanf` reads it for `"%q) %s %q"`.
struct Scan<'a> {
    rest: &'a str,
}

impl<'a> Scan<'a> {
    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start_matches([' ', '\t', '\r']);
    }

    /// `%q`: a double- or back-quoted Go string literal, after optional spaces.
    fn quoted(&mut self) -> Option<Vec<u8>> {
        self.skip_spaces();
        let bytes = self.rest.as_bytes();
        let end = match bytes.first()? {
            b'"' => {
                let mut j = 1;
                loop {
                    match bytes.get(j)? {
                        b'\\' => j += 2,
                        b'"' => break j,
                        _ => j += 1,
                    }
                }
            }
            b'`' => 1 + bytes[1..].iter().position(|&b| b == b'`')? + 1,
            _ => return None,
        };
        let literal = self.rest.get(..=end)?;
        let value = gofmt::unquote(literal).ok()?;
        self.rest = &self.rest[end + 1..];
        Some(value)
    }

    /// A literal character of the format.
    fn literal(&mut self, c: char) -> Option<()> {
        self.rest = self.rest.strip_prefix(c)?;
        Some(())
    }

    /// A space of the format: one or more spaces, or the end of the input.
    fn space(&mut self) -> Option<()> {
        if self.rest.is_empty() {
            return Some(());
        }
        let before = self.rest.len();
        self.skip_spaces();
        (self.rest.len() < before).then_some(())
    }

    /// `%s`: a word, after optional spaces.
    fn word(&mut self) -> Option<String> {
        self.skip_spaces();
        let end = self
            .rest
            .find([' ', '\t', '\r', '\n'])
            .unwrap_or(self.rest.len());
        if end == 0 {
            return None;
        }
        let word = self.rest[..end].to_string();
        self.rest = &self.rest[end..];
        Some(word)
    }
}

/// One compare line: `<target>("<key>") <op> "<value>"`.
pub fn parse_compare(line: &[u8]) -> Result<Compare, CtlError> {
    let line = String::from_utf8_lossy(line);
    let Some((target, rest)) = line.split_once('(') else {
        return Err(invalid(format!("malformed comparison: {line}")));
    };
    let mut scan = Scan { rest };
    let mut key = Vec::new();
    let mut op = String::new();
    let mut value = Vec::new();
    let complete = (|| {
        key = scan.quoted()?;
        scan.literal(')')?;
        scan.space()?;
        op = scan.word()?;
        scan.space()?;
        value = scan.quoted()?;
        Some(())
    })()
    .is_some();
    if !complete {
        return Err(invalid(format!(
            "malformed comparison: {line}; got {target}({}) {op} {}",
            gofmt::quote(&key),
            gofmt::quote(&value)
        )));
    }
    let value_text = String::from_utf8_lossy(&value).into_owned();
    let number = |base| gofmt::parse_int(&value_text, base).ok();
    let (compare_target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, number(10).map(TargetUnion::Version)),
        "c" | "create" => (
            CompareTarget::Create,
            number(10).map(TargetUnion::CreateRevision),
        ),
        "m" | "mod" => (CompareTarget::Mod, number(10).map(TargetUnion::ModRevision)),
        "val" | "value" => (CompareTarget::Value, Some(TargetUnion::Value(value))),
        "lease" => (CompareTarget::Lease, number(16).map(TargetUnion::Lease)),
        _ => {
            return Err(invalid(format!(
                "malformed comparison: {line} (unknown target {target})"
            )))
        }
    };
    let Some(union) = union else {
        return Err(invalid(format!("invalid txn compare request: {line}")));
    };
    let result = match op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        _ => {
            return Err(invalid(format!(
                "malformed comparison: {line} (unknown result op {op})"
            )))
        }
    };
    Ok(Compare {
        result: result as i32,
        target: compare_target as i32,
        key,
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        argify(line.as_bytes())
            .unwrap()
            .into_iter()
            .map(|w| String::from_utf8(w).unwrap())
            .collect()
    }

    #[test]
    fn argify_splits_as_etcdctl() {
        assert_eq!(
            words(r#"put key1 "overwrote-key1""#),
            ["put", "key1", "overwrote-key1"]
        );
        assert_eq!(words(r#"put k "a \"b\" c""#), ["put", "k", "a \"b\" c"]);
        assert_eq!(words("put k 'raw \\n text'"), ["put", "k", "raw \\n text"]);
        assert_eq!(words("  get   --prefix  k "), ["get", "--prefix", "k"]);
        assert_eq!(words(r#"put "unclosed k"#), ["put", "unclosed", "k"]);
        assert_eq!(words(r#"put k "\x41\n""#), ["put", "k", "A\n"]);
        assert!(argify(br#"put k "\q""#).is_err());
    }

    #[test]
    fn compares_parse_as_etcdctl() {
        let c = parse_compare(br#"mod("key1") > "0""#).unwrap();
        assert_eq!(c.key, b"key1");
        assert_eq!(c.target, CompareTarget::Mod as i32);
        assert_eq!(c.result, CompareResult::Greater as i32);
        assert_eq!(c.target_union, Some(TargetUnion::ModRevision(0)));
        let c = parse_compare(br#"val("k") != "v 1""#).unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::Value(b"v 1".to_vec())));
        let c = parse_compare(br#"lease("k") = "1f""#).unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::Lease(31)));
        let c = parse_compare(br#"version("k")   <   "3" trailing"#).unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::Version(3)));
    }

    #[test]
    fn bad_compares_get_etcdctls_errors() {
        let cases: &[(&str, &str)] = &[
            (
                r#"mod(key1) > "0""#,
                r#"malformed comparison: mod(key1) > "0"; got mod("")  """#,
            ),
            (
                r#"mod("key1")"#,
                r#"malformed comparison: mod("key1"); got mod("key1")  """#,
            ),
            (
                r#"mod("k")>"0""#,
                r#"malformed comparison: mod("k")>"0"; got mod("k")  """#,
            ),
            (
                r#"foo("key1") > "0""#,
                r#"malformed comparison: foo("key1") > "0" (unknown target foo)"#,
            ),
            (
                r#"mod("key1") > "x""#,
                r#"invalid txn compare request: mod("key1") > "x""#,
            ),
            (
                r#"mod("key1") >= "0""#,
                r#"malformed comparison: mod("key1") >= "0" (unknown result op >=)"#,
            ),
            ("nothing", "malformed comparison: nothing"),
        ];
        for (line, message) in cases {
            assert_eq!(
                parse_compare(line.as_bytes()).unwrap_err(),
                invalid(*message),
                "{line}"
            );
        }
    }

    #[test]
    fn requests_parse_with_their_flags() {
        let op = parse_request(br#"get --prefix k"#).unwrap();
        match op.request {
            Some(Request::RequestRange(r)) => assert_eq!(r.range_end, b"l"),
            other => panic!("{other:?}"),
        }
        let op = parse_request(br#"put k "v v" --prev-kv"#).unwrap();
        match op.request {
            Some(Request::RequestPut(p)) => {
                assert_eq!(p.value, b"v v");
                assert!(p.prev_kv);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_request(b"get").unwrap_err(),
            invalid("invalid txn compare request: get")
        );
        assert_eq!(
            parse_request(b"badop key").unwrap_err(),
            invalid("invalid txn request: badop key")
        );
        assert_eq!(
            parse_request(b"get --bad k").unwrap_err(),
            invalid("invalid txn request: get --bad k")
        );
        assert_eq!(
            parse_request(b"put key").unwrap_err(),
            CtlError::bad_args("put command needs 1 argument and input from stdin or 2 arguments")
        );
    }

    #[test]
    fn sections_end_with_empty_lines_and_input_with_a_newline() {
        let text = "mod(\"k\") > \"0\"\n\nput k v\nget k\n\ndel k\n\n";
        let txn = read_txn(&mut text.as_bytes(), |_| Ok(())).unwrap();
        assert_eq!(
            (txn.compare.len(), txn.success.len(), txn.failure.len()),
            (1, 2, 1)
        );
        let mut prompts = Vec::new();
        let _ = read_txn(&mut "\n\n\n".as_bytes(), |p| {
            prompts.push(p.to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(prompts.len(), 3);
        for early in ["mod(\"k\") > \"0\"\n\nput k v\n", "", "\n\nput k v"] {
            assert_eq!(
                read_txn(&mut early.as_bytes(), |_| Ok(())).unwrap_err(),
                invalid("EOF"),
                "{early:?}"
            );
        }
    }
}
