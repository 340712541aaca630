//! Cluster TLS: one CA per cluster, one certificate per node, mutual authentication on every
//! QUIC connection.
//!
//! ## Model
//! A cluster is the set of processes holding a certificate signed by the cluster CA. Every node
//! is both a QUIC server and a QUIC client on one endpoint, so each node certificate carries both
//! the `serverAuth` and the `clientAuth` extended key usages, and both ends of every connection
//! present and verify one: a process without a certificate from the cluster CA cannot complete a
//! handshake, so it can neither join membership nor inject state.
//!
//! ## How a certificate binds a node id
//! A node certificate carries exactly one DNS subject alternative name `node-<id>.crdtkv`
//! (see [`node_dns_name`]). A DNS name was chosen over a URI SAN because webpki checks DNS names
//! natively: a client that dials node 7 passes `node-7.crdtkv` as the TLS server name and the
//! standard `WebPkiServerVerifier` itself refuses a server whose certificate is for another node.
//! No custom name matching is written here. When a node dials an address without knowing the
//! node id behind it (a seed), it passes the sentinel [`ANY_NODE_NAME`]; the verifier then checks
//! the chain against the name the certificate carries, so any cluster node is accepted and its
//! id is learnt from the certificate. After the handshake both sides read the peer's id from the
//! verified certificate ([`node_id_from_cert`]): that id, never anything the peer says later, is
//! the `from` of every datagram and message the transport delivers.
//!
//! An optional allow-list of node ids (`allowed_node_ids`) is enforced inside both verifiers, so a
//! valid cluster certificate for a node id that is not allowed fails the handshake.
//!
//! ## Files
//! `crdtkv cert ca --out DIR` calls [`create_ca_files`]: `DIR/ca.pem` (CA certificate, 0644) and
//! `DIR/ca.key` (CA private key, 0600). `crdtkv cert node --ca DIR --node-id N --out OUT` calls
//! [`issue_node_files`]: `OUT/node.pem` (the node certificate, 0644), `OUT/node.key` (its key,
//! 0600) and `OUT/ca.pem` (a copy of the CA certificate), so one directory is all a node needs
//! ([`TlsPaths::in_dir`]). Existing files are never overwritten. Certificates are valid from 1975
//! to 4096: crdtkv has no rotation story yet, and a cluster is re-keyed by making a new CA.

mod certs;
mod verify;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crdt::NodeId;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

pub use certs::{CaFiles, CaPem, NodeCertFiles, NodePem, create_ca_files, issue_node_files};
pub use verify::{client_config, server_config};

/// ALPN protocol id of crdtkv peer connections; a peer speaking anything else is refused.
pub const ALPN: &[u8] = b"crdtkv/1";

/// TLS server name used when dialling an address whose node id is not known yet (a seed).
/// No node certificate can carry it, so it never matches a real node name.
pub const ANY_NODE_NAME: &str = "any.crdtkv";

const NAME_PREFIX: &str = "node-";
const NAME_SUFFIX: &str = ".crdtkv";

/// The DNS subject alternative name that binds `id` in a node certificate: `node-<id>.crdtkv`.
pub fn node_dns_name(id: NodeId) -> String {
    format!("{NAME_PREFIX}{}{NAME_SUFFIX}", id.get())
}

/// Parses `node-<id>.crdtkv` (decimal digits only), or `None` for any other name.
pub fn parse_node_dns_name(name: &str) -> Option<NodeId> {
    let digits = name.strip_prefix(NAME_PREFIX)?.strip_suffix(NAME_SUFFIX)?;
    // `u64::from_str` accepts a leading '+', which would give one id two spellings.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(NodeId)
}

/// Reads the node id a certificate binds: its single `node-<id>.crdtkv` DNS SAN.
///
/// This does not verify the certificate; call it on certificates the TLS stack has verified.
pub fn node_id_from_cert(cert: &CertificateDer<'_>) -> Result<NodeId> {
    let invalid = |reason: String| Error::CertNodeId { reason };
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| invalid(format!("not an X.509 certificate: {e}")))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| invalid(format!("bad subjectAltName extension: {e}")))?
        .ok_or_else(|| invalid("no subjectAltName extension".into()))?;
    let mut ids = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => parse_node_dns_name(dns),
            _ => None,
        });
    match (ids.next(), ids.next()) {
        (Some(id), None) => Ok(id),
        (None, _) => Err(invalid("no node-<id>.crdtkv DNS name".into())),
        (Some(_), Some(_)) => Err(invalid("more than one node-<id>.crdtkv DNS name".into())),
    }
}

/// Where a node's TLS material lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// The cluster CA certificate (PEM).
    pub ca_cert: PathBuf,
    /// The node certificate chain (PEM, node certificate first).
    pub node_cert: PathBuf,
    /// The node private key (PEM, PKCS#8 or SEC1).
    pub node_key: PathBuf,
}

impl TlsPaths {
    /// The layout written by [`issue_node_files`]: `DIR/ca.pem`, `DIR/node.pem`, `DIR/node.key`.
    pub fn in_dir(dir: &Path) -> Self {
        TlsPaths {
            ca_cert: dir.join(certs::CA_CERT_FILE),
            node_cert: dir.join(certs::NODE_CERT_FILE),
            node_key: dir.join(certs::NODE_KEY_FILE),
        }
    }
}

/// A node's loaded TLS material: the cluster CA, its own chain and key, and the node id that
/// its certificate binds.
#[derive(Debug)]
pub struct NodeTls {
    node_id: NodeId,
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl Clone for NodeTls {
    fn clone(&self) -> Self {
        NodeTls {
            node_id: self.node_id,
            ca: self.ca.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl NodeTls {
    /// Loads the CA certificate, the node chain and key from files; errors name the file.
    pub fn load(paths: &TlsPaths) -> Result<Self> {
        let read = |path: &Path| std::fs::read(path).map_err(|e| Error::file(path, e));
        Self::from_pem_named(
            (&read(&paths.ca_cert)?, &paths.ca_cert),
            (&read(&paths.node_cert)?, &paths.node_cert),
            (&read(&paths.node_key)?, &paths.node_key),
        )
    }

    /// Builds from in-memory PEM (for tests and for material made on first start).
    pub fn from_pem(ca_cert_pem: &str, node_cert_pem: &str, node_key_pem: &str) -> Result<Self> {
        Self::from_pem_named(
            (ca_cert_pem.as_bytes(), Path::new("<ca certificate>")),
            (node_cert_pem.as_bytes(), Path::new("<node certificate>")),
            (node_key_pem.as_bytes(), Path::new("<node key>")),
        )
    }

    fn from_pem_named(
        (ca_pem, ca_path): (&[u8], &Path),
        (chain_pem, chain_path): (&[u8], &Path),
        (key_pem, key_path): (&[u8], &Path),
    ) -> Result<Self> {
        let pem_err = |path: &Path, reason: String| Error::Pem {
            path: path.to_path_buf(),
            reason,
        };
        let ca = CertificateDer::from_pem_slice(ca_pem)
            .map_err(|e| pem_err(ca_path, format!("no CA certificate: {e}")))?;
        let chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| pem_err(chain_path, format!("bad certificate: {e}")))?;
        let first = chain
            .first()
            .ok_or_else(|| pem_err(chain_path, "no certificate".into()))?;
        let node_id = node_id_from_cert(first).map_err(|e| pem_err(chain_path, e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| pem_err(key_path, format!("no private key: {e}")))?;
        Ok(NodeTls {
            node_id,
            ca,
            chain,
            key,
        })
    }

    /// The node id this node's certificate binds.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The cluster CA certificate.
    pub fn ca_cert(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// A secret that is the same every time this node starts with the same key and differs
    /// between nodes: the QUIC stateless-reset key is derived from it, so a restarted node can
    /// reset the stale connections its peers still hold to its previous incarnation.
    pub(crate) fn reset_secret(&self) -> [u8; 32] {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"crdtkv quic stateless reset v1\0");
        ctx.update(self.key.secret_der());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }
}

/// Which authenticated peers are accepted beyond "has a certificate from the cluster CA".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerPolicy {
    /// If set, only these node ids may connect or be connected to.
    pub allowed_node_ids: Option<Arc<BTreeSet<NodeId>>>,
}

impl PeerPolicy {
    /// A policy that admits only `ids`.
    pub fn allow_only(ids: impl IntoIterator<Item = NodeId>) -> Self {
        PeerPolicy {
            allowed_node_ids: Some(Arc::new(ids.into_iter().collect())),
        }
    }

    /// Whether `id` passes the allow-list.
    pub fn allows(&self, id: NodeId) -> bool {
        self.allowed_node_ids
            .as_ref()
            .is_none_or(|allowed| allowed.contains(&id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_round_trip_and_reject_lookalikes() {
        assert_eq!(node_dns_name(NodeId(42)), "node-42.crdtkv");
        assert_eq!(parse_node_dns_name("node-42.crdtkv"), Some(NodeId(42)));
        for bad in [
            "node-.crdtkv",
            "node-+4.crdtkv",
            "node-4.crdtkv.evil",
            "xnode-4.crdtkv",
            "node-99999999999999999999.crdtkv",
            ANY_NODE_NAME,
        ] {
            assert_eq!(parse_node_dns_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn issued_certificate_binds_its_node_id() {
        let ca = CaPem::generate().unwrap();
        let node = ca.issue_node(NodeId(7)).unwrap();
        let tls = NodeTls::from_pem(&ca.cert_pem, &node.cert_pem, &node.key_pem).unwrap();
        assert_eq!(tls.node_id(), NodeId(7));
        let ca_der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        assert!(
            node_id_from_cert(&ca_der).is_err(),
            "the CA binds no node id"
        );
    }

    #[test]
    fn reset_secret_is_stable_per_key_and_differs_between_nodes() {
        let ca = CaPem::generate().unwrap();
        let a = ca.issue_node(NodeId(1)).unwrap();
        let b = ca.issue_node(NodeId(2)).unwrap();
        let load = |n: &NodePem| NodeTls::from_pem(&ca.cert_pem, &n.cert_pem, &n.key_pem).unwrap();
        assert_eq!(load(&a).reset_secret(), load(&a).reset_secret());
        assert_ne!(load(&a).reset_secret(), load(&b).reset_secret());
    }

    #[test]
    fn policy_allow_list() {
        assert!(PeerPolicy::default().allows(NodeId(9)));
        let only = PeerPolicy::allow_only([NodeId(1), NodeId(2)]);
        assert!(only.allows(NodeId(2)));
        assert!(!only.allows(NodeId(3)));
    }
}
