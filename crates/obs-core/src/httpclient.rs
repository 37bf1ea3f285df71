//! What every outgoing HTTP client of the appliance needs (scrapes, notifications): TLS
//! settings from PEM files as prometheus/common's `tls_config` reads them, and base64 for
//! basic authentication.

/// A TLS configuration: trust `ca_pem` (PEM certificates; the system's roots when `None`),
/// present `client` (certificate chain PEM, private key PEM) when given, and verify nothing
/// when `insecure_skip_verify`.
pub fn tls_config(
    ca_pem: Option<&[u8]>,
    client: Option<(&[u8], &[u8])>,
    insecure_skip_verify: bool,
) -> Result<ureq::tls::TlsConfig, String> {
    let mut builder = ureq::tls::TlsConfig::builder().disable_verification(insecure_skip_verify);
    if let Some(pem) = ca_pem {
        let certs = certificates(pem);
        if certs.is_empty() {
            return Err("no certificate in the CA file".to_owned());
        }
        builder = builder.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
    }
    if let Some((cert_pem, key_pem)) = client {
        let certs = certificates(cert_pem);
        if certs.is_empty() {
            return Err("no certificate in the client certificate file".to_owned());
        }
        let key =
            ureq::tls::PrivateKey::from_pem(key_pem).map_err(|err| format!("invalid client key: {err}"))?;
        builder = builder.client_cert(Some(ureq::tls::ClientCert::new_with_certs(&certs, key)));
    }
    Ok(builder.build())
}

fn certificates(pem: &[u8]) -> Vec<ureq::tls::Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert.to_owned()),
            _ => None,
        })
        .collect()
}

/// Standard base64 with padding (RFC 4648), as basic authentication sends it.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), expected);
        }
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let error = tls_config(Some(b"not a pem"), None, false).unwrap_err();
        assert!(error.contains("no certificate"), "{error}");
    }
}
