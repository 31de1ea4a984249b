//! Every service of the etcd v3.5 API exists with every RPC, under the gRPC path clients
//! call (`/package.Service/Method`), with the right streaming shape.

#![allow(clippy::unwrap_used)]

use etcd_proto::prost::Message;
use etcd_proto::prost_types::FileDescriptorSet;
use std::collections::BTreeMap;

/// A method: (name, client streaming, server streaming).
type Method = (&'static str, bool, bool);

/// (service, methods) as etcd v3.5 defines them.
const ETCD_V35: &[(&str, &[Method])] = &[
    (
        "etcdserverpb.KV",
        &[
            ("Range", false, false),
            ("Put", false, false),
            ("DeleteRange", false, false),
            ("Txn", false, false),
            ("Compact", false, false),
        ],
    ),
    ("etcdserverpb.Watch", &[("Watch", true, true)]),
    (
        "etcdserverpb.Lease",
        &[
            ("LeaseGrant", false, false),
            ("LeaseRevoke", false, false),
            ("LeaseKeepAlive", true, true),
            ("LeaseTimeToLive", false, false),
            ("LeaseLeases", false, false),
        ],
    ),
    (
        "etcdserverpb.Cluster",
        &[
            ("MemberAdd", false, false),
            ("MemberRemove", false, false),
            ("MemberUpdate", false, false),
            ("MemberList", false, false),
            ("MemberPromote", false, false),
        ],
    ),
    (
        "etcdserverpb.Maintenance",
        &[
            ("Alarm", false, false),
            ("Status", false, false),
            ("Defragment", false, false),
            ("Hash", false, false),
            ("HashKV", false, false),
            ("Snapshot", false, true),
            ("MoveLeader", false, false),
            ("Downgrade", false, false),
        ],
    ),
    (
        "etcdserverpb.Auth",
        &[
            ("AuthEnable", false, false),
            ("AuthDisable", false, false),
            ("AuthStatus", false, false),
            ("Authenticate", false, false),
            ("UserAdd", false, false),
            ("UserGet", false, false),
            ("UserList", false, false),
            ("UserDelete", false, false),
            ("UserChangePassword", false, false),
            ("UserGrantRole", false, false),
            ("UserRevokeRole", false, false),
            ("RoleAdd", false, false),
            ("RoleGet", false, false),
            ("RoleList", false, false),
            ("RoleDelete", false, false),
            ("RoleGrantPermission", false, false),
            ("RoleRevokePermission", false, false),
        ],
    ),
    (
        "v3lockpb.Lock",
        &[("Lock", false, false), ("Unlock", false, false)],
    ),
    (
        "v3electionpb.Election",
        &[
            ("Campaign", false, false),
            ("Proclaim", false, false),
            ("Leader", false, false),
            ("Observe", false, true),
            ("Resign", false, false),
        ],
    ),
];

fn services() -> BTreeMap<String, Vec<(String, bool, bool)>> {
    let fds = FileDescriptorSet::decode(etcd_proto::FILE_DESCRIPTOR_SET).unwrap();
    let mut out = BTreeMap::new();
    for file in fds.file {
        for svc in &file.service {
            let name = format!("{}.{}", file.package(), svc.name());
            let methods = svc
                .method
                .iter()
                .map(|m| {
                    (
                        m.name().to_string(),
                        m.client_streaming(),
                        m.server_streaming(),
                    )
                })
                .collect();
            out.insert(name, methods);
        }
    }
    out
}

#[test]
fn every_etcd_v35_service_has_every_rpc_with_its_streaming_shape() {
    let ours = services();
    for (service, methods) in ETCD_V35 {
        let got = ours
            .get(*service)
            .unwrap_or_else(|| panic!("missing service {service}"));
        let want: Vec<(String, bool, bool)> = methods
            .iter()
            .map(|(m, c, s)| (m.to_string(), *c, *s))
            .collect();
        assert_eq!(got, &want, "methods of {service}");
    }
    // The client API packages carry etcd's services and nothing else; internal packages
    // (such as the peer transport's) are not part of the client API.
    let client_api: Vec<&String> = ours
        .keys()
        .filter(|name| {
            ["etcdserverpb.", "v3lockpb.", "v3electionpb."]
                .iter()
                .any(|pkg| name.starts_with(pkg))
        })
        .collect();
    assert_eq!(
        client_api.len(),
        ETCD_V35.len(),
        "no services beyond etcd's: {client_api:?}"
    );
}

#[test]
fn generated_servers_answer_on_etcds_grpc_paths() {
    use etcd_proto::etcdserverpb::{
        auth_server::AuthServer, cluster_server::ClusterServer, kv_server::KvServer,
        lease_server::LeaseServer, maintenance_server::MaintenanceServer,
        watch_server::WatchServer,
    };
    use etcd_proto::tonic::server::NamedService;
    use etcd_proto::v3electionpb::election_server::ElectionServer;
    use etcd_proto::v3lockpb::lock_server::LockServer;

    assert_eq!(<KvServer<()> as NamedService>::NAME, "etcdserverpb.KV");
    assert_eq!(
        <WatchServer<()> as NamedService>::NAME,
        "etcdserverpb.Watch"
    );
    assert_eq!(
        <LeaseServer<()> as NamedService>::NAME,
        "etcdserverpb.Lease"
    );
    assert_eq!(
        <ClusterServer<()> as NamedService>::NAME,
        "etcdserverpb.Cluster"
    );
    assert_eq!(
        <MaintenanceServer<()> as NamedService>::NAME,
        "etcdserverpb.Maintenance"
    );
    assert_eq!(<AuthServer<()> as NamedService>::NAME, "etcdserverpb.Auth");
    assert_eq!(<LockServer<()> as NamedService>::NAME, "v3lockpb.Lock");
    assert_eq!(
        <ElectionServer<()> as NamedService>::NAME,
        "v3electionpb.Election"
    );
}
