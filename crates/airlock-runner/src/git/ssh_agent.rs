//! The ssh-agent protocol (draft-miller-ssh-agent), the two requests `ssh` makes: list the
//! identities, sign with one. Keys are parsed and signatures made by `ssh-key` (RustCrypto);
//! only the framing is here. Written rather than taken from an agent crate because those keep
//! a key store filled by `ssh-add`, while this agent holds nothing: each request asks the
//! control plane for the owner's keys at that moment (a deleted key stops working at once),
//! and the environment cannot add, remove or lock keys.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use ssh_key::encoding::{Decode, Encode};
use ssh_key::PrivateKey;

use super::{CredentialSource, GitCredential};

const FAILURE: u8 = 5;
const REQUEST_IDENTITIES: u8 = 11;
const IDENTITIES_ANSWER: u8 = 12;
const SIGN_REQUEST: u8 = 13;
const SIGN_RESPONSE: u8 = 14;
/// Requests are a key blob and the data to sign (a session hash): small.
const MAX_MESSAGE: usize = 256 * 1024;

pub(super) fn answer(mut conn: UnixStream, source: &CredentialSource) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    loop {
        let mut len = [0u8; 4];
        match conn.read_exact(&mut len) {
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            other => other?,
        }
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 || len > MAX_MESSAGE {
            return Ok(());
        }
        let mut message = vec![0u8; len];
        conn.read_exact(&mut message)?;
        let reply = respond(message[0], &message[1..], source).unwrap_or_else(|| vec![FAILURE]);
        let mut framed = (reply.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        conn.write_all(&framed)?;
    }
}

fn respond(kind: u8, mut body: &[u8], source: &CredentialSource) -> Option<Vec<u8>> {
    match kind {
        REQUEST_IDENTITIES => {
            let keys = keys(source);
            let mut out = vec![IDENTITIES_ANSWER];
            (keys.len() as u32).encode(&mut out).ok()?;
            for (host, key) in &keys {
                key.public_key().to_bytes().ok()?.encode(&mut out).ok()?;
                format!("airlock git credential for {host}").encode(&mut out).ok()?;
            }
            Some(out)
        }
        SIGN_REQUEST => {
            let blob = Vec::<u8>::decode(&mut body).ok()?;
            let data = Vec::<u8>::decode(&mut body).ok()?;
            let key = keys(source).into_iter().map(|(_, k)| k).find(|k| k.public_key().to_bytes().is_ok_and(|b| b == blob))?;
            let signature = signature::Signer::<ssh_key::Signature>::try_sign(&key, &data).ok()?;
            let mut out = vec![SIGN_RESPONSE];
            signature.encode_vec().ok()?.encode(&mut out).ok()?;
            Some(out)
        }
        // Adding, removing, locking, extensions (session-bind): not this agent's business.
        _ => None,
    }
}

/// The owner's SSH keys now. A key that cannot be used is left out and logged (by host and
/// reason, never content).
fn keys(source: &CredentialSource) -> Vec<(String, PrivateKey)> {
    let credentials = match source() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot fetch git credentials");
            return Vec::new();
        }
    };
    credentials
        .into_iter()
        .filter_map(|c| match c {
            GitCredential::Ssh { host, private_key } => match PrivateKey::from_openssh(private_key.trim()) {
                Ok(key) if key.is_encrypted() => {
                    tracing::warn!(host, "the SSH key for this host has a passphrase; store it without one");
                    None
                }
                Ok(key) => Some((host, key)),
                Err(e) => {
                    tracing::warn!(host, error = %e, "the SSH key for this host cannot be used (ed25519 and ECDSA keys are supported)");
                    None
                }
            },
            GitCredential::Https { .. } => None,
        })
        .collect()
}
