//! Email receivers: the message (subject as Alertmanager's default `email.default.subject`, a
//! plain-text body listing the alerts) and a small SMTP client written for it: implicit TLS on
//! port 465, otherwise STARTTLS when offered (required unless `require_tls: false`, as
//! upstream), AUTH PLAIN / LOGIN / CRAM-MD5, then one message to every recipient.
//!
//! Hand-written because the one SMTP crate that fits (lettre) would bring its own TLS and
//! async stacks for the handful of commands needed here; rustls is already in the build.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use crate::alert::AlertStatus;
use crate::config::EmailConfig;
use crate::dispatch::Notification;
use crate::time::Timestamp;

/// A message ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailMessage {
    /// `Subject:`.
    pub subject: String,
    /// Recipients (`to`, split at commas).
    pub to: Vec<String>,
    /// The whole message: headers, blank line, body, CRLF line ends.
    pub data: String,
}

/// Why sending failed, and whether a retry may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpError {
    /// What happened.
    pub message: String,
    /// Transient (network, 4xx replies) rather than permanent (5xx, configuration).
    pub retry: bool,
}

impl SmtpError {
    fn permanent(message: impl Into<String>) -> SmtpError {
        SmtpError {
            message: message.into(),
            retry: false,
        }
    }

    fn transient(message: impl Into<String>) -> SmtpError {
        SmtpError {
            message: message.into(),
            retry: true,
        }
    }
}

/// Alertmanager's default subject: `[FIRING:2] DiskFull node-a (warning)`.
pub fn subject(notification: &Notification) -> String {
    let at = notification.created_at;
    let status = notification.status();
    let mut subject = format!("[{}", status.as_str().to_uppercase());
    if status == AlertStatus::Firing {
        let firing = notification
            .alerts
            .iter()
            .filter(|alert| alert.status_at(at) == AlertStatus::Firing)
            .count();
        subject.push_str(&format!(":{firing}"));
    }
    subject.push(']');
    let group_values: Vec<&str> = notification.group_labels.iter().map(|(_, value)| value).collect();
    subject.push(' ');
    subject.push_str(&group_values.join(" "));
    // Labels every alert shares, beyond the group's.
    let common: Vec<&str> = common_labels(notification)
        .into_iter()
        .filter(|(name, _)| !notification.group_labels.contains(name))
        .map(|(_, value)| value)
        .collect();
    if !common.is_empty() {
        subject.push_str(&format!(" ({})", common.join(" ")));
    }
    subject
}

fn common_labels(notification: &Notification) -> Vec<(&str, &str)> {
    let Some((first, rest)) = notification.alerts.split_first() else {
        return Vec::new();
    };
    first
        .labels
        .iter()
        .filter(|(name, value)| rest.iter().all(|alert| alert.labels.get(name) == *value))
        .collect()
}

/// The text body: each alert with its labels, annotations and source.
pub fn body(notification: &Notification, external_url: &str) -> String {
    let at = notification.created_at;
    let mut text = String::new();
    for (status, heading) in [
        (AlertStatus::Firing, "Firing"),
        (AlertStatus::Resolved, "Resolved"),
    ] {
        let alerts: Vec<_> = notification
            .alerts
            .iter()
            .filter(|alert| alert.status_at(at) == status)
            .collect();
        if alerts.is_empty() {
            continue;
        }
        text.push_str(&format!(
            "{} alert(s) {}:\n\n",
            alerts.len(),
            heading.to_lowercase()
        ));
        for alert in alerts {
            text.push_str("Labels:\n");
            for (name, value) in alert.labels.iter() {
                text.push_str(&format!("  - {name} = {value}\n"));
            }
            if !alert.annotations.is_empty() {
                text.push_str("Annotations:\n");
                for (name, value) in alert.annotations.iter() {
                    text.push_str(&format!("  - {name} = {value}\n"));
                }
            }
            text.push_str(&format!("Started: {}\n", alert.starts_at.to_rfc3339_nano()));
            if status == AlertStatus::Resolved
                && let Some(ends) = alert.ends_at
            {
                text.push_str(&format!("Ended: {}\n", ends.to_rfc3339_nano()));
            }
            if !alert.generator_url.is_empty() {
                text.push_str(&format!("Source: {}\n", alert.generator_url));
            }
            text.push('\n');
        }
    }
    if notification.truncated_alerts > 0 {
        text.push_str(&format!(
            "({} more alerts not shown)\n\n",
            notification.truncated_alerts
        ));
    }
    if !external_url.is_empty() {
        text.push_str(&format!("Sent by obs-appliance: {external_url}/api/v2/alerts\n"));
    }
    text
}

/// The message for a notification.
pub fn message(notification: &Notification, config: &EmailConfig, external_url: &str) -> EmailMessage {
    let subject = config
        .headers
        .get("Subject")
        .filter(|value| !value.contains("{{"))
        .cloned()
        .unwrap_or_else(|| subject(notification));
    let to: Vec<String> = config
        .to
        .split(',')
        .map(|address| address.trim().to_owned())
        .filter(|address| !address.is_empty())
        .collect();
    let now = Timestamp::now();
    let mut headers: Vec<(String, String)> = vec![
        ("From".to_owned(), config.from.clone()),
        ("To".to_owned(), to.join(", ")),
        ("Subject".to_owned(), encode_header(&subject)),
        ("Date".to_owned(), rfc2822(now)),
        (
            "Message-Id".to_owned(),
            format!("<{}.{}@{}>", now.unix_nanos(), notification.id, config.hello),
        ),
        ("MIME-Version".to_owned(), "1.0".to_owned()),
        ("Content-Type".to_owned(), "text/plain; charset=UTF-8".to_owned()),
        ("Content-Transfer-Encoding".to_owned(), "8bit".to_owned()),
    ];
    for (name, value) in &config.headers {
        if ["From", "To", "Subject"].contains(&name.as_str()) || value.contains("{{") {
            continue;
        }
        headers.push((name.clone(), value.clone()));
    }
    let mut data = String::new();
    for (name, value) in headers {
        data.push_str(&format!("{name}: {}\r\n", value.replace(['\r', '\n'], " ")));
    }
    data.push_str("\r\n");
    for line in body(notification, external_url).lines() {
        // Dot-stuffing (RFC 5321 4.5.2).
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    EmailMessage { subject, to, data }
}

/// RFC 2047 encoded-word when the header is not plain ASCII.
fn encode_header(text: &str) -> String {
    if text.is_ascii() {
        return text.to_owned();
    }
    format!("=?UTF-8?B?{}?=", obs_core::httpclient::base64(text.as_bytes()))
}

fn rfc2822(time: Timestamp) -> String {
    let civil = time.civil_utc();
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let seconds = time.unix_secs().rem_euclid(60);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{seconds:02} +0000",
        DAYS[civil.weekday as usize % 7],
        civil.day,
        MONTHS[(civil.month as usize + 11) % 12],
        civil.year,
        civil.hour,
        civil.minute
    )
}

/// A connection, plain or TLS.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.read(buf),
            Stream::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(stream) => stream.write(buf),
            Stream::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(stream) => stream.flush(),
            Stream::Tls(stream) => stream.flush(),
        }
    }
}

/// One SMTP session.
struct Session {
    reader: BufReader<Stream>,
}

impl Session {
    /// Reads a (multi-line) reply: its code and text lines.
    fn reply(&mut self) -> Result<(u16, Vec<String>), SmtpError> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let read = self
                .reader
                .by_ref()
                .take(4096)
                .read_line(&mut line)
                .map_err(|err| SmtpError::transient(format!("reading from the SMTP server: {err}")))?;
            if read == 0 {
                return Err(SmtpError::transient("the SMTP server closed the connection"));
            }
            let line = line.trim_end().to_owned();
            let code = line
                .get(..3)
                .and_then(|code| code.parse::<u16>().ok())
                .ok_or_else(|| SmtpError::permanent(format!("not an SMTP reply: {line:?}")))?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line.get(4..).unwrap_or_default().to_owned());
            if last {
                return Ok((code, lines));
            }
            if lines.len() > 100 {
                return Err(SmtpError::permanent("SMTP reply too long"));
            }
        }
    }

    /// Sends a command and expects a reply in `expected` (e.g. 2xx).
    fn command(&mut self, line: &str, expected: u16, shown: &str) -> Result<Vec<String>, SmtpError> {
        let stream = self.reader.get_mut();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|err| SmtpError::transient(format!("writing to the SMTP server: {err}")))?;
        self.expect(expected, shown)
    }

    fn expect(&mut self, expected: u16, shown: &str) -> Result<Vec<String>, SmtpError> {
        let (code, lines) = self.reply()?;
        if code / 100 != expected / 100 {
            let message = format!("{shown}: the SMTP server answered {code} {}", lines.join(" "));
            return Err(if code / 100 == 4 {
                SmtpError::transient(message)
            } else {
                SmtpError::permanent(message)
            });
        }
        Ok(lines)
    }
}

/// Sends `message` through the configured smarthost within `timeout` per network operation.
pub fn send(config: &EmailConfig, message: &EmailMessage, timeout: Duration) -> Result<(), SmtpError> {
    let (host, port) = config
        .smarthost
        .rsplit_once(':')
        .ok_or_else(|| SmtpError::permanent(format!("smarthost {:?} is not host:port", config.smarthost)))?;
    let address = (host.trim_matches(['[', ']']), port.parse::<u16>().unwrap_or(25))
        .to_socket_addrs()
        .map_err(|err| SmtpError::transient(format!("resolving {host}: {err}")))?
        .next()
        .ok_or_else(|| SmtpError::transient(format!("{host} has no address")))?;
    let tcp = TcpStream::connect_timeout(&address, timeout)
        .map_err(|err| SmtpError::transient(format!("connecting to {}: {err}", config.smarthost)))?;
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let implicit_tls = port == "465";
    let stream = if implicit_tls {
        Stream::Tls(Box::new(tls(config, host, tcp)?))
    } else {
        Stream::Plain(tcp)
    };
    let mut session = Session {
        reader: BufReader::new(stream),
    };
    session.expect(220, "greeting")?;
    let mut features = session.command(&format!("EHLO {}", config.hello), 250, "EHLO")?;
    let has = |features: &[String], name: &str| {
        features.iter().any(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case(name))
        })
    };
    if !implicit_tls {
        if has(&features, "STARTTLS") {
            session.command("STARTTLS", 220, "STARTTLS")?;
            let Stream::Plain(tcp) = session.reader.into_inner() else {
                return Err(SmtpError::permanent("TLS already started"));
            };
            session = Session {
                reader: BufReader::new(Stream::Tls(Box::new(tls(config, host, tcp)?))),
            };
            features = session.command(&format!("EHLO {}", config.hello), 250, "EHLO")?;
        } else if config.require_tls {
            return Err(SmtpError::permanent(format!(
                "{} does not offer STARTTLS and require_tls is true",
                config.smarthost
            )));
        }
    }
    if let Some(username) = config.auth_username.as_deref().filter(|user| !user.is_empty()) {
        authenticate(&mut session, config, username, &features)?;
    }
    session.command(
        &format!("MAIL FROM:<{}>", bare_address(&config.from)),
        250,
        "MAIL FROM",
    )?;
    for recipient in &message.to {
        session.command(&format!("RCPT TO:<{}>", bare_address(recipient)), 250, "RCPT TO")?;
    }
    session.command("DATA", 354, "DATA")?;
    session.command(&format!("{}.", message.data), 250, "message")?;
    let _ = session.command("QUIT", 221, "QUIT");
    Ok(())
}

/// `Name <a@b>` → `a@b`.
fn bare_address(address: &str) -> &str {
    match (address.rfind('<'), address.rfind('>')) {
        (Some(open), Some(close)) if open < close => &address[open + 1..close],
        _ => address.trim(),
    }
}

fn authenticate(
    session: &mut Session,
    config: &EmailConfig,
    username: &str,
    features: &[String],
) -> Result<(), SmtpError> {
    let mechanisms: Vec<String> = features
        .iter()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words
                .next()
                .filter(|word| word.eq_ignore_ascii_case("AUTH"))
                .map(|_| words.map(str::to_uppercase).collect::<Vec<_>>().join(" "))
        })
        .collect();
    let offered = |name: &str| {
        mechanisms
            .iter()
            .any(|line| line.split(' ').any(|word| word == name))
    };
    let password = match (&config.auth_password, &config.auth_password_file) {
        (_, Some(file)) => std::fs::read_to_string(file)
            .map(|text| text.trim().to_owned())
            .map_err(|err| SmtpError::permanent(format!("cannot read {file}: {err}")))?,
        (Some(password), None) => password.expose().to_owned(),
        (None, None) => String::new(),
    };
    let b64 = |text: &str| obs_core::httpclient::base64(text.as_bytes());
    if offered("CRAM-MD5")
        && let Some(secret) = &config.auth_secret
    {
        let challenge = session.command("AUTH CRAM-MD5", 334, "AUTH CRAM-MD5")?;
        let challenge = base64_decode(challenge.first().map(String::as_str).unwrap_or_default());
        let digest = hmac_md5(secret.expose().as_bytes(), &challenge);
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        session.command(&b64(&format!("{username} {hex}")), 235, "AUTH CRAM-MD5")?;
        return Ok(());
    }
    if offered("PLAIN") {
        let identity = config.auth_identity.clone().unwrap_or_default();
        session.command(
            &format!(
                "AUTH PLAIN {}",
                b64(&format!("{identity}\0{username}\0{password}"))
            ),
            235,
            "AUTH PLAIN",
        )?;
        return Ok(());
    }
    if offered("LOGIN") {
        session.command("AUTH LOGIN", 334, "AUTH LOGIN")?;
        session.command(&b64(username), 334, "AUTH LOGIN")?;
        session.command(&b64(&password), 235, "AUTH LOGIN")?;
        return Ok(());
    }
    Err(SmtpError::permanent(format!(
        "{} offers no authentication mechanism obs-appliance supports (PLAIN, LOGIN, CRAM-MD5)",
        config.smarthost
    )))
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |byte: u8| -> Option<u32> {
        Some(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0);
    for byte in text.bytes().filter_map(value) {
        buffer = (buffer << 6) | byte;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    out
}

fn hmac_md5(key: &[u8], message: &[u8]) -> [u8; 16] {
    use md5::{Digest, Md5};
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..16].copy_from_slice(&Md5::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner_key: Vec<u8> = block.iter().map(|byte| byte ^ 0x36).collect();
    let outer_key: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).collect();
    let inner = Md5::new()
        .chain_update(&inner_key)
        .chain_update(message)
        .finalize();
    Md5::new()
        .chain_update(&outer_key)
        .chain_update(inner)
        .finalize()
        .into()
}

fn tls(
    config: &EmailConfig,
    host: &str,
    tcp: TcpStream,
) -> Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>, SmtpError> {
    let tls = &config.tls_config;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| SmtpError::permanent(format!("TLS setup: {err}")))?;
    let client = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let ca = match (&tls.ca, &tls.ca_file) {
            (Some(pem), _) => Some(pem.clone().into_bytes()),
            (None, Some(file)) => Some(
                std::fs::read(file)
                    .map_err(|err| SmtpError::permanent(format!("cannot read {file}: {err}")))?,
            ),
            (None, None) => None,
        };
        match ca {
            Some(pem) => {
                use rustls::pki_types::pem::PemObject;
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem).flatten() {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err(SmtpError::permanent("no certificate in the CA file"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| host.trim_matches(['[', ']']).to_owned());
    let server_name = rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|err| SmtpError::permanent(format!("invalid TLS server name {name:?}: {err}")))?;
    let connection = rustls::ClientConnection::new(Arc::new(client), server_name)
        .map_err(|err| SmtpError::permanent(format!("TLS setup: {err}")))?;
    Ok(rustls::StreamOwned::new(connection, tcp))
}

/// `insecure_skip_verify: true`: any certificate is accepted (signatures still checked).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_md5_matches_rfc_2104() {
        // RFC 2104, test case 2.
        let digest = hmac_md5(b"Jefe", b"what do ya want for nothing?");
        let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(hex, "750c783e6ab0b503eaa86e310a5db738");
    }

    #[test]
    fn base64_round_trips() {
        let text = "<1896.697170952@postoffice.example.net>";
        assert_eq!(
            base64_decode(&obs_core::httpclient::base64(text.as_bytes())),
            text.as_bytes()
        );
    }

    #[test]
    fn addresses_lose_their_display_names() {
        assert_eq!(bare_address("Alerts <alerts@example.org>"), "alerts@example.org");
        assert_eq!(bare_address(" ops@example.org "), "ops@example.org");
    }

    #[test]
    fn dates_are_rfc_2822() {
        let at = Timestamp::parse_rfc3339("2024-05-01T10:02:03Z").unwrap();
        assert_eq!(rfc2822(at), "Wed, 01 May 2024 10:02:03 +0000");
    }
}
