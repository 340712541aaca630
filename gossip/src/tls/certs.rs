//! Making the cluster CA and node certificates: the library behind `crdtkv cert ca` and
//! `crdtkv cert node`. rcgen does the X.509 work; this file only picks the parameters and
//! writes files carefully (keys 0600, never overwriting, no partial key left behind).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crdt::NodeId;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::node_dns_name;
use crate::error::{Error, Result};

pub(crate) const CA_CERT_FILE: &str = "ca.pem";
pub(crate) const CA_KEY_FILE: &str = "ca.key";
pub(crate) const NODE_CERT_FILE: &str = "node.pem";
pub(crate) const NODE_KEY_FILE: &str = "node.key";

/// A cluster CA in memory: its certificate and private key, PEM encoded.
#[derive(Clone)]
pub struct CaPem {
    /// The self-signed CA certificate.
    pub cert_pem: String,
    /// The CA private key (PKCS#8). Keep it off the nodes if you can.
    pub key_pem: String,
}

impl std::fmt::Debug for CaPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaPem").finish_non_exhaustive()
    }
}

/// A node certificate and key in memory, PEM encoded.
#[derive(Clone)]
pub struct NodePem {
    /// The node certificate, signed by the cluster CA.
    pub cert_pem: String,
    /// The node private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for NodePem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodePem").finish_non_exhaustive()
    }
}

impl CaPem {
    /// Generates a new cluster CA (ECDSA P-256), allowed to sign only end-entity certificates.
    pub fn generate() -> Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = name("crdtkv cluster CA");
        // Path length 0: the CA signs node certificates directly, never another CA.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(CaPem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Issues a certificate for `node_id`, usable as both TLS server and client, that binds the
    /// id as the DNS name `node-<id>.crdtkv`.
    pub fn issue_node(&self, node_id: NodeId) -> Result<NodePem> {
        let ca_key = KeyPair::from_pem(&self.key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![node_dns_name(node_id)])?;
        params.distinguished_name = name(&format!("crdtkv node {}", node_id.get()));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // One endpoint per node is both QUIC server and client.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(NodePem {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "crdtkv");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The files written by [`create_ca_files`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaFiles {
    /// `DIR/ca.pem`.
    pub cert: PathBuf,
    /// `DIR/ca.key` (mode 0600).
    pub key: PathBuf,
}

impl CaFiles {
    /// The paths of a CA in `dir`, whether or not it exists.
    pub fn in_dir(dir: &Path) -> Self {
        CaFiles {
            cert: dir.join(CA_CERT_FILE),
            key: dir.join(CA_KEY_FILE),
        }
    }

    /// Reads the CA back.
    pub fn load(&self) -> Result<CaPem> {
        Ok(CaPem {
            cert_pem: read_string(&self.cert)?,
            key_pem: read_string(&self.key)?,
        })
    }
}

/// The files written by [`issue_node_files`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeCertFiles {
    /// `OUT/node.pem`.
    pub cert: PathBuf,
    /// `OUT/node.key` (mode 0600).
    pub key: PathBuf,
    /// `OUT/ca.pem`, a copy of the CA certificate.
    pub ca_cert: PathBuf,
}

/// `crdtkv cert ca --out DIR`: creates `DIR` if needed and writes a new cluster CA to
/// `DIR/ca.pem` and `DIR/ca.key` (0600). Refuses if either file exists.
pub fn create_ca_files(dir: &Path) -> Result<CaFiles> {
    let files = CaFiles::in_dir(dir);
    refuse_existing(&[&files.cert, &files.key])?;
    let ca = CaPem::generate()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    write_new(&files.key, ca.key_pem.as_bytes(), true)?;
    write_new(&files.cert, ca.cert_pem.as_bytes(), false)?;
    Ok(files)
}

/// `crdtkv cert node --ca CA_DIR --node-id N --out OUT`: issues a certificate for `node_id`
/// signed by the CA in `ca_dir` and writes `OUT/node.pem`, `OUT/node.key` (0600) and a copy of
/// the CA certificate as `OUT/ca.pem`. Refuses if any of them exists.
pub fn issue_node_files(ca_dir: &Path, node_id: NodeId, out_dir: &Path) -> Result<NodeCertFiles> {
    let ca = CaFiles::in_dir(ca_dir).load()?;
    let files = NodeCertFiles {
        cert: out_dir.join(NODE_CERT_FILE),
        key: out_dir.join(NODE_KEY_FILE),
        ca_cert: out_dir.join(CA_CERT_FILE),
    };
    // When OUT is the CA directory itself, ca.pem is already the right file.
    let same_dir = same_file(&files.ca_cert, &CaFiles::in_dir(ca_dir).cert);
    let mut must_not_exist = vec![&files.cert, &files.key];
    if !same_dir {
        must_not_exist.push(&files.ca_cert);
    }
    refuse_existing(&must_not_exist)?;
    let node = ca.issue_node(node_id)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::file(out_dir, e))?;
    write_new(&files.key, node.key_pem.as_bytes(), true)?;
    write_new(&files.cert, node.cert_pem.as_bytes(), false)?;
    if !same_dir {
        write_new(&files.ca_cert, ca.cert_pem.as_bytes(), false)?;
    }
    Ok(files)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn read_string(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::file(path, e))
}

fn refuse_existing(paths: &[&PathBuf]) -> Result<()> {
    match paths.iter().find(|p| p.exists()) {
        Some(p) => Err(Error::FileExists {
            path: p.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Creates `path` (failing if it exists) and writes `bytes`. A secret is created with mode 0600
/// from the start, so the key is never readable by others even for an instant; if the write
/// fails the partial file is removed.
fn write_new(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| Error::file(path, e))?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(Error::file(path, e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{NodeTls, TlsPaths};

    #[test]
    fn cli_layout_writes_private_keys_0600_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("ca");
        let node_dir = dir.path().join("node3");
        let ca = create_ca_files(&ca_dir).unwrap();
        let node = issue_node_files(&ca_dir, NodeId(3), &node_dir).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&ca.key), 0o600);
            assert_eq!(mode(&node.key), 0o600);
        }
        let tls = NodeTls::load(&TlsPaths::in_dir(&node_dir)).unwrap();
        assert_eq!(tls.node_id(), NodeId(3));
        // Never overwrite: a second run fails and leaves the first key in place.
        let key_before = std::fs::read(&node.key).unwrap();
        assert!(matches!(
            issue_node_files(&ca_dir, NodeId(3), &node_dir),
            Err(Error::FileExists { .. })
        ));
        assert!(matches!(
            create_ca_files(&ca_dir),
            Err(Error::FileExists { .. })
        ));
        assert_eq!(std::fs::read(&node.key).unwrap(), key_before);
        // Issuing into the CA directory itself reuses its ca.pem.
        issue_node_files(&ca_dir, NodeId(4), &ca_dir).unwrap();
    }

    #[test]
    fn load_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let paths = TlsPaths::in_dir(dir.path());
        let err = NodeTls::load(&paths).unwrap_err().to_string();
        assert!(err.contains("ca.pem"), "{err}");
        std::fs::write(&paths.ca_cert, "garbage").unwrap();
        std::fs::write(&paths.node_cert, "garbage").unwrap();
        std::fs::write(&paths.node_key, "garbage").unwrap();
        let err = NodeTls::load(&paths).unwrap_err().to_string();
        assert!(err.contains("ca.pem"), "{err}");
    }
}
