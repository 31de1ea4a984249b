//! `get`, `put`, `del` and `compaction`, and the request builders `txn` shares.

use std::ffi::OsString;

use etcd_proto::etcdserverpb::kv_client::KvClient;
use etcd_proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use etcd_proto::etcdserverpb::{CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest};

use super::{os_bytes, os_text, read_stdin_all};
use crate::cli::{CompactionArgs, DelArgs, GetArgs, PutArgs};
use crate::error::{CtlError, ExitCode};
use crate::gofmt;
use crate::printer::Format;
use crate::{emit, emit_err, Env};

/// The end of the range of keys that start with `key` (clientv3's `getPrefix`): `key`
/// with its last byte below 0xff incremented and the rest cut; `\0` (every key from
/// `key` on) when there is none.
pub fn prefix_end(key: &[u8]) -> Vec<u8> {
    let mut end = key.to_vec();
    while let Some(&last) = end.last() {
        if last < 0xff {
            if let Some(b) = end.last_mut() {
                *b = last + 1;
            }
            return end;
        }
        end.pop();
    }
    vec![0]
}

fn arg_bytes(args: &[OsString], i: usize) -> Vec<u8> {
    args.get(i).map(|a| os_bytes(a)).unwrap_or_default()
}

/// The range request of `get`'s flags and arguments, checked as etcdctl checks them.
pub fn get_request(args: &GetArgs) -> Result<RangeRequest, CtlError> {
    if args.args.is_empty() {
        return Err(CtlError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    if args.prefix && args.from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if args.keys_only && args.count_only {
        return Err(CtlError::bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    let serializable = match args.consistency.as_str() {
        "s" => true,
        "l" => false,
        other => {
            return Err(CtlError::new(
                ExitCode::BadFeature,
                format!(
                    "unknown consistency flag {}",
                    gofmt::quote(other.as_bytes())
                ),
            ))
        }
    };
    let mut key = arg_bytes(&args.args, 0);
    let mut range_end = Vec::new();
    if args.args.len() > 1 {
        if args.prefix || args.from_key {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        range_end = arg_bytes(&args.args, 1);
    }
    let mut sort_order = match args.order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(CtlError::new(
                ExitCode::BadFeature,
                format!("bad sort order {}", args.order),
            ))
        }
    };
    let sort_target = match args.sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(CtlError::new(
                ExitCode::BadFeature,
                format!("bad sort target {}", args.sort_by),
            ))
        }
    };
    // The server returns keys in ascending order anyway; asking would make it sort.
    if sort_target == SortTarget::Key && sort_order == SortOrder::Ascend {
        sort_order = SortOrder::None;
    }
    if args.prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_end(&key);
        }
    }
    if args.from_key {
        if key.is_empty() {
            key = vec![0];
        }
        range_end = vec![0];
    }
    Ok(RangeRequest {
        key,
        range_end,
        limit: args.limit,
        revision: args.rev.max(0),
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        serializable,
        keys_only: args.keys_only,
        count_only: args.count_only,
        ..RangeRequest::default()
    })
}

/// The put request of `put`'s flags and arguments. Without a value argument the value is
/// all of stdin when `stdin` allows it (as etcdctl's `argOrStdin`).
pub fn put_request(args: &PutArgs, stdin: bool) -> Result<PutRequest, CtlError> {
    let needs = "put command needs 1 argument and input from stdin or 2 arguments";
    if args.args.is_empty() {
        return Err(CtlError::bad_args(needs));
    }
    let key = arg_bytes(&args.args, 0);
    if args.ignore_value && args.args.len() > 1 {
        return Err(CtlError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let mut value = Vec::new();
    if !args.ignore_value {
        value = match args.args.get(1) {
            Some(v) => os_bytes(v),
            None if stdin => match read_stdin_all() {
                Ok(bytes) if !bytes.is_empty() => bytes,
                _ => return Err(CtlError::bad_args(needs)),
            },
            None => return Err(CtlError::bad_args(needs)),
        };
    }
    let lease = gofmt::parse_int(&args.lease, 16)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key,
        value,
        lease,
        prev_kv: args.prev_kv,
        ignore_value: args.ignore_value,
        ignore_lease: args.ignore_lease,
    })
}

/// The delete request of `del`'s flags and arguments.
pub fn del_request(args: &DelArgs) -> Result<DeleteRangeRequest, CtlError> {
    if args.args.is_empty() || args.args.len() > 2 {
        return Err(CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    if args.prefix && args.from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut key = arg_bytes(&args.args, 0);
    let mut range_end = Vec::new();
    if args.args.len() > 1 {
        if args.prefix || args.from_key {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        range_end = arg_bytes(&args.args, 1);
        if !args.range {
            emit_err(
                "In etcd v3.6, the operation will be suspended for a few seconds to provide the user time to verify range.\n",
            );
        }
    }
    if args.prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_end(&key);
        }
    }
    if args.from_key {
        if key.is_empty() {
            key = vec![0];
        }
        range_end = vec![0];
    }
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: args.prev_kv,
    })
}

/// `get [options] <key> [range_end]`
pub async fn get(env: &Env, args: &GetArgs) -> Result<(), CtlError> {
    let request = get_request(args)?;
    let session = env.session()?;
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            KvClient::new(conn.channel.clone())
                .range(conn.request(request, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| e.exit(ExitCode::Error))?;
    let mut printer = session.printer;
    if args.count_only && printer.format != Format::Fields {
        return Err(CtlError::bad_args(
            "--count-only is only for `--write-out=fields`",
        ));
    }
    if args.print_value_only {
        if printer.format != Format::Simple {
            return Err(CtlError::bad_args(
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        printer.value_only = true;
    }
    emit(&printer.get(&response)?)
}

/// `put [options] <key> <value>`
pub async fn put(env: &Env, args: &PutArgs) -> Result<(), CtlError> {
    let request = put_request(args, true)?;
    let session = env.session()?;
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            KvClient::new(conn.channel.clone())
                .put(conn.request(request, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| e.exit(ExitCode::Error))?;
    emit(&session.printer.put(&response)?)
}

/// `del [options] <key> [range_end]`
pub async fn del(env: &Env, args: &DelArgs) -> Result<(), CtlError> {
    let request = del_request(args)?;
    let session = env.session()?;
    let response = session
        .connector
        .unary(|conn, timeout| async move {
            KvClient::new(conn.channel.clone())
                .delete_range(conn.request(request, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| e.exit(ExitCode::Error))?;
    emit(&session.printer.del(&response)?)
}

/// `compaction [--physical] <revision>`
pub async fn compaction(env: &Env, args: &CompactionArgs) -> Result<(), CtlError> {
    if args.args.len() != 1 {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    }
    let revision = gofmt::parse_int(&os_text(&args.args[0]), 10).map_err(CtlError::error)?;
    let session = env.session()?;
    let request = CompactionRequest {
        revision,
        physical: args.physical,
    };
    session
        .connector
        .unary(|conn, timeout| async move {
            KvClient::new(conn.channel.clone())
                .compact(conn.request(request, Some(timeout)))
                .await
        })
        .await
        .map_err(|e| e.exit(ExitCode::Error))?;
    emit(format!("compacted revision {revision}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn get_args(args: &[&str]) -> GetArgs {
        match crate::cli::Cli::parse_from(["etcdctl", "get"].iter().chain(args)).command {
            Some(crate::cli::Command::Get(g)) => g,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prefix_ends_as_clientv3() {
        assert_eq!(prefix_end(b"abc"), b"abd");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_end(b""), vec![0]);
    }

    #[test]
    fn get_flags_make_etcdctls_request() {
        let r = get_request(&get_args(&["foo", "--prefix", "--limit", "2"])).unwrap();
        assert_eq!(
            (r.key.as_slice(), r.range_end.as_slice()),
            (&b"foo"[..], &b"fop"[..])
        );
        assert_eq!(r.limit, 2);
        let r = get_request(&get_args(&["", "--prefix"])).unwrap();
        assert_eq!((r.key, r.range_end), (vec![0], vec![0]));
        let r = get_request(&get_args(&["b", "--from-key", "--consistency", "s"])).unwrap();
        assert_eq!((r.key, r.range_end), (b"b".to_vec(), vec![0]));
        assert!(r.serializable);
        let r = get_request(&get_args(&["a", "--sort-by", "key", "--order", "ascend"])).unwrap();
        assert_eq!(r.sort_order, SortOrder::None as i32);
        let r = get_request(&get_args(&["a", "--sort-by", "MODIFY"])).unwrap();
        assert_eq!(
            (r.sort_target, r.sort_order),
            (SortTarget::Mod as i32, SortOrder::None as i32)
        );
    }

    #[test]
    fn bad_get_flags_get_etcdctls_errors() {
        let cases: &[(&[&str], ExitCode, &str)] = &[
            (&[], ExitCode::BadArgs, "get command needs one argument as key and an optional argument as range_end"),
            (&["a", "--prefix", "--from-key"], ExitCode::BadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one"),
            (&["a", "--keys-only", "--count-only"], ExitCode::BadArgs, "`--keys-only` and `--count-only` cannot be set at the same time, choose one"),
            (&["a", "--consistency", "x"], ExitCode::BadFeature, "unknown consistency flag \"x\""),
            (&["a", "b", "--prefix"], ExitCode::BadArgs, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set"),
            (&["a", "--order", "x"], ExitCode::BadFeature, "bad sort order x"),
            (&["a", "--sort-by", "x"], ExitCode::BadFeature, "bad sort target x"),
        ];
        for (args, code, message) in cases {
            let err = get_request(&get_args(args)).unwrap_err();
            assert_eq!(err, CtlError::new(*code, *message), "{args:?}");
        }
    }

    #[test]
    fn put_lease_is_hex() {
        let put = |args: &[&str]| match crate::cli::Cli::parse_from(
            ["etcdctl", "put"].iter().chain(args),
        )
        .command
        {
            Some(crate::cli::Command::Put(p)) => put_request(&p, false),
            other => panic!("{other:?}"),
        };
        assert_eq!(put(&["k", "v", "--lease", "1f"]).unwrap().lease, 31);
        assert_eq!(
            put(&["k", "v", "--lease", "zz"]).unwrap_err(),
            CtlError::bad_args(
                "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
            )
        );
        assert_eq!(
            put(&["k"]).unwrap_err(),
            CtlError::bad_args("put command needs 1 argument and input from stdin or 2 arguments")
        );
        assert_eq!(
            put(&["k", "v", "--ignore-value"]).unwrap_err(),
            CtlError::bad_args("put command needs only 1 argument when 'ignore-value' is set")
        );
        let r = put(&["k", "--ignore-value"]).unwrap();
        assert!(r.ignore_value && r.value.is_empty());
    }
}
