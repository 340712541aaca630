//! rustls configurations for quinn, with the certificate checks of crdtkv.
//!
//! Both verifiers wrap the stock webpki ones, which do all the chain, signature, validity and
//! key-usage work; the wrappers add only what is ours: reading the node id from the certificate,
//! the "any node" server name for seeds, and the allow-list.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{ALPN, ANY_NODE_NAME, NodeTls, PeerPolicy, node_dns_name, node_id_from_cert};
use crate::error::{Error, Result};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(tls: &NodeTls) -> Result<Arc<rustls::RootCertStore>> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(tls.ca_cert().clone())
        .map_err(|e| Error::Tls(format!("CA certificate: {e}")))?;
    Ok(Arc::new(roots))
}

fn not_a_node() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
}

fn not_allowed() -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

/// TLS 1.3 server side of a node: requires a client certificate from the cluster CA for an
/// allowed node id, presents this node's certificate, speaks only [`ALPN`].
pub fn server_config(tls: &NodeTls, policy: &PeerPolicy) -> Result<rustls::ServerConfig> {
    let inner = WebPkiClientVerifier::builder_with_provider(roots(tls)?, provider())
        .build()
        .map_err(|e| Error::Tls(format!("client verifier: {e}")))?;
    let verifier = Arc::new(NodeClientVerifier {
        inner,
        policy: policy.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(tls.chain.clone(), tls.key.clone_key())
        .map_err(|e| Error::Tls(format!("node certificate or key: {e}")))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// TLS 1.3 client side of a node: verifies the server against the cluster CA and the node id it
/// dialled (the TLS server name `node-<id>.crdtkv`, or [`ANY_NODE_NAME`] for any node), presents
/// this node's certificate, speaks only [`ALPN`].
pub fn client_config(tls: &NodeTls, policy: &PeerPolicy) -> Result<rustls::ClientConfig> {
    let inner = WebPkiServerVerifier::builder_with_provider(roots(tls)?, provider())
        .build()
        .map_err(|e| Error::Tls(format!("server verifier: {e}")))?;
    let verifier = Arc::new(NodeServerVerifier {
        inner,
        policy: policy.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(tls.chain.clone(), tls.key.clone_key())
        .map_err(|e| Error::Tls(format!("node certificate or key: {e}")))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Checks a server: webpki verifies chain and name; the name is the node id we dialled, or the
/// certificate's own node name when we dialled "any node".
#[derive(Debug)]
struct NodeServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    policy: PeerPolicy,
}

impl ServerCertVerifier for NodeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let id = node_id_from_cert(end_entity).map_err(|_| not_a_node())?;
        let any = matches!(server_name, ServerName::DnsName(n) if n.as_ref() == ANY_NODE_NAME);
        let own_name;
        let name = if any {
            own_name = ServerName::try_from(node_dns_name(id)).map_err(|_| not_a_node())?;
            &own_name
        } else {
            server_name
        };
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)?;
        if !self.policy.allows(id) {
            return Err(not_allowed());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Checks a client: webpki verifies the chain (client certificates carry no name to match), then
/// the certificate must bind a node id, and that id must be allowed.
#[derive(Debug)]
struct NodeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    policy: PeerPolicy,
}

impl ClientCertVerifier for NodeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let id = node_id_from_cert(end_entity).map_err(|_| not_a_node())?;
        if !self.policy.allows(id) {
            return Err(not_allowed());
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::CaPem;
    use crdt::NodeId;
    use rustls_pki_types::pem::PemObject;

    fn node(ca: &CaPem, id: u64) -> NodeTls {
        let n = ca.issue_node(NodeId(id)).unwrap();
        NodeTls::from_pem(&ca.cert_pem, &n.cert_pem, &n.key_pem).unwrap()
    }

    fn cert_of(ca: &CaPem, id: u64) -> CertificateDer<'static> {
        let n = ca.issue_node(NodeId(id)).unwrap();
        CertificateDer::from_pem_slice(n.cert_pem.as_bytes()).unwrap()
    }

    fn server_verifier(tls: &NodeTls, policy: PeerPolicy) -> NodeServerVerifier {
        NodeServerVerifier {
            inner: WebPkiServerVerifier::builder_with_provider(roots(tls).unwrap(), provider())
                .build()
                .unwrap(),
            policy,
        }
    }

    #[test]
    fn server_name_pins_the_dialled_node_id() {
        let ca = CaPem::generate().unwrap();
        let me = node(&ca, 1);
        let verifier = server_verifier(&me, PeerPolicy::default());
        let two = cert_of(&ca, 2);
        let check = |name: &str| {
            let name = ServerName::try_from(name.to_string()).unwrap();
            verifier.verify_server_cert(&two, &[], &name, &[], UnixTime::now())
        };
        assert!(check("node-2.crdtkv").is_ok());
        assert!(check(ANY_NODE_NAME).is_ok());
        assert!(
            check("node-3.crdtkv").is_err(),
            "node 2 must not pass as node 3"
        );
    }

    #[test]
    fn foreign_ca_and_disallowed_ids_are_refused() {
        let ca = CaPem::generate().unwrap();
        let other = CaPem::generate().unwrap();
        let me = node(&ca, 1);
        let any = ServerName::try_from(ANY_NODE_NAME).unwrap();
        let open = server_verifier(&me, PeerPolicy::default());
        assert!(
            open.verify_server_cert(&cert_of(&other, 2), &[], &any, &[], UnixTime::now())
                .is_err()
        );
        let strict = server_verifier(&me, PeerPolicy::allow_only([NodeId(1), NodeId(2)]));
        let now = UnixTime::now();
        assert!(
            strict
                .verify_server_cert(&cert_of(&ca, 2), &[], &any, &[], now)
                .is_ok()
        );
        assert!(
            strict
                .verify_server_cert(&cert_of(&ca, 3), &[], &any, &[], now)
                .is_err()
        );
    }

    #[test]
    fn configs_build_for_quinn() {
        let ca = CaPem::generate().unwrap();
        let me = node(&ca, 1);
        let server = server_config(&me, &PeerPolicy::default()).unwrap();
        let client = client_config(&me, &PeerPolicy::default()).unwrap();
        assert!(quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(server)).is_ok());
        assert!(quinn::crypto::rustls::QuicClientConfig::try_from(client).is_ok());
    }
}
