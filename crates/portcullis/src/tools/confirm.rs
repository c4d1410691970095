//! Asking the person before a destructive tool acts.
//!
//! - 2026-07-28: the first call answers `input_required` with a form elicitation and a
//!   `requestState` sealed with ChaCha20-Poly1305. The state binds the user, the tool, a
//!   digest of the arguments and a five-minute expiry, and it is accepted once. The retry
//!   carries the person's answer in `inputResponses`. With the authorization server, the
//!   sealing key and the record of spent states live in the database, so the retry may
//!   reach any instance ([`RequestStateKey`], `Store::spend_nonce`); without it (`--auth
//!   none`), both are per process.
//! - 2025 sessions: `elicitation/create` goes to the client on the call's own stream, and
//!   the call waits for the answer.
//!
//! A client that cannot ask the person (no `elicitation` capability) gets a tool error
//! saying so: the action does not happen unasked, unless the operator allows unconfirmed
//! calls (`--allow-unconfirmed`), and then the audit log says it ran `unconfirmed`.
//!
//! Tools opt in with one line, [`ServeConfig::require_confirmation`], and the host asks
//! before the tool runs; a tool that wants to word its question from data (`notes_delete`
//! names the note) calls [`confirm`] itself.
//!
//! [`ServeConfig::require_confirmation`]: crate::config::ServeConfig::require_confirmation

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use portcullis_authz::server::MasterKey;
use portcullis_store::Store;
use ring::rand::{SecureRandom, SystemRandom};
use rmcp::model::{
    ElicitRequest, ElicitRequestParams, ElicitationAction, InputRequest, InputRequests,
    InputRequiredResult, InputResponses,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::{Deserialize, Serialize};

const TTL_SECS: i64 = 300;
const KEY: &str = "confirm";

/// What asking produced.
#[derive(Debug)]
pub enum Confirmation {
    /// The person said yes: go ahead.
    Confirmed,
    /// Send this back to the client (2026-07-28 first round).
    Ask(InputRequiredResult),
    /// No: the text says why (declined, cancelled, or the client cannot ask).
    Refused(String),
}

/// How one call's confirmation went, for the audit log. The host puts one on every
/// `tools/call` context; [`confirm`] fills it in.
#[derive(Debug, Default)]
pub struct CallConfirmation {
    allow_unconfirmed: bool,
    state: AtomicU8,
}

const NOT_ASKED: u8 = 0;
const CONFIRMED: u8 = 1;
const DECLINED: u8 = 2;
const UNCONFIRMED: u8 = 3;
const CANNOT_ASK: u8 = 4;

impl CallConfirmation {
    pub fn new(allow_unconfirmed: bool) -> Self {
        Self {
            allow_unconfirmed,
            state: AtomicU8::new(NOT_ASKED),
        }
    }

    fn set(&self, state: u8) {
        self.state.store(state, Ordering::Relaxed);
    }

    /// The audit log's `confirmation` value: `None` when the call did not need one.
    pub fn recorded(&self) -> Option<&'static str> {
        match self.state.load(Ordering::Relaxed) {
            CONFIRMED => Some("confirmed"),
            DECLINED => Some("declined"),
            UNCONFIRMED => Some("unconfirmed"),
            CANNOT_ASK => Some("cannot_ask"),
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct State {
    /// The user the question was for.
    u: String,
    /// The tool.
    t: String,
    /// SHA-256 of the arguments.
    d: String,
    /// Expiry, Unix seconds.
    e: i64,
    /// Single-use nonce.
    n: String,
}

/// The key that seals `requestState`, shared by every instance on one database: the host
/// puts it in the request extensions when the authorization server runs.
#[derive(Debug, Clone)]
pub struct RequestStateKey(pub Arc<MasterKey>);

/// The per-process sealing key, for servers without the authorization server: the same
/// AEAD (ChaCha20-Poly1305, nonce || ciphertext) that seals server secrets at rest, under a
/// random key.
fn process_key() -> Option<&'static MasterKey> {
    static KEY: OnceLock<Option<MasterKey>> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).ok()?;
        MasterKey::from_bytes(&bytes)
    })
    .as_ref()
}

fn used() -> &'static Mutex<HashMap<String, i64>> {
    static USED: OnceLock<Mutex<HashMap<String, i64>>> = OnceLock::new();
    USED.get_or_init(|| Mutex::new(HashMap::new()))
}

use crate::time::unix_now as now;

const LABEL: &str = "portcullis confirm v1";

fn seal(key: &MasterKey, state: &State) -> Option<String> {
    let plain = serde_json::to_vec(state).ok()?;
    key.seal(LABEL, &plain, &SystemRandom::new())
        .map(|sealed| B64.encode(sealed))
}

fn open(key: &MasterKey, sealed: &str) -> Option<State> {
    let plain = key.open(LABEL, &B64.decode(sealed).ok()?)?;
    serde_json::from_slice(&plain).ok()
}

/// Spends the state's nonce: in the database when there is one (every instance sees it),
/// else in this process. False when it was spent before; a database that cannot be asked
/// refuses the state too (the person is asked again rather than the action run twice).
async fn spend(store: Option<&Store>, st: &State, now: i64) -> bool {
    if let Some(store) = store {
        return match store.spend_nonce(&st.n, st.e).await {
            Ok(first) => first,
            Err(e) => {
                tracing::error!(error = %e, "could not record a spent requestState");
                false
            }
        };
    }
    let Ok(mut used) = used().lock() else {
        return false;
    };
    used.retain(|_, exp| *exp > now);
    used.insert(st.n.clone(), st.e).is_none()
}

fn bad_state() -> ErrorData {
    ErrorData::invalid_params(
        "requestState was not accepted: it was altered, has expired, was used already, or belongs to another user or call; call the tool again without it to be asked anew",
        None,
    )
}

/// Asks the person to confirm `question` before `tool` acts for `user` with `arguments`.
pub async fn confirm(
    ctx: &RequestContext<RoleServer>,
    user: &str,
    tool: &str,
    arguments: &serde_json::Value,
    question: &str,
    state: Option<String>,
    responses: Option<InputResponses>,
) -> Result<Confirmation, ErrorData> {
    let asked = ctx.extensions.get::<Arc<CallConfirmation>>().cloned();
    let note = |state: u8| {
        if let Some(a) = &asked {
            a.set(state);
        }
    };
    let can_ask = ctx
        .client_capabilities()
        .is_some_and(|c| c.elicitation.is_some());
    if !can_ask {
        if asked.as_ref().is_some_and(|a| a.allow_unconfirmed) {
            note(UNCONFIRMED);
            return Ok(Confirmation::Confirmed);
        }
        note(CANNOT_ASK);
        return Ok(Confirmation::Refused(format!(
            "{tool} needs the person's confirmation, and this client cannot ask (it did not declare the elicitation capability); nothing was changed. Use a client that supports elicitation, or ask the operator to allow unconfirmed calls"
        )));
    }
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"confirm": {"type": "boolean", "title": "Yes, do it", "default": false}},
        "required": ["confirm"]
    });
    let requested_schema = serde_json::from_value(schema)
        .map_err(|e| ErrorData::internal_error(format!("confirmation schema: {e}"), None))?;
    let params = ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: question.to_owned(),
        requested_schema,
    };
    let stateless = super::is_modern(ctx);
    let digest = portcullis_oauth::secret::hash(&arguments.to_string());
    let parts = ctx.extensions.get::<http::request::Parts>();
    let shared = parts.and_then(|p| p.extensions.get::<RequestStateKey>());
    let store = parts.and_then(|p| p.extensions.get::<Store>());
    let key = match shared {
        Some(k) => Some(&*k.0),
        None => process_key(),
    }
    .ok_or_else(|| ErrorData::internal_error("no key to seal the request state", None))?;

    let answer: serde_json::Value = if stateless {
        let Some(sealed) = state else {
            let mut n = [0u8; 16];
            SystemRandom::new()
                .fill(&mut n)
                .map_err(|_| ErrorData::internal_error("random source failed", None))?;
            let st = State {
                u: user.to_owned(),
                t: tool.to_owned(),
                d: digest,
                e: now() + TTL_SECS,
                n: B64.encode(n),
            };
            let sealed = seal(key, &st).ok_or_else(|| {
                ErrorData::internal_error("could not seal the request state", None)
            })?;
            let mut requests = InputRequests::new();
            requests.insert(
                KEY.to_owned(),
                InputRequest::Elicitation(ElicitRequest::new(params)),
            );
            return Ok(Confirmation::Ask(InputRequiredResult::new(
                Some(requests),
                Some(sealed),
            )));
        };
        let st = open(key, &sealed).ok_or_else(bad_state)?;
        let now = now();
        if st.u != user || st.t != tool || st.d != digest || st.e <= now {
            return Err(bad_state());
        }
        if !spend(store, &st, now).await {
            return Err(bad_state());
        }
        match responses.as_ref().and_then(|r| r.get(KEY)) {
            Some(a) => a.clone(),
            None => {
                return Err(ErrorData::invalid_params(
                    format!("inputResponses[{KEY:?}] is missing: answer the elicitation"),
                    None,
                ));
            }
        }
    } else {
        let result = ctx.peer.create_elicitation(params).await.map_err(|e| {
            ErrorData::internal_error(format!("asking the person failed: {e}"), None)
        })?;
        serde_json::to_value(result).map_err(|e| ErrorData::internal_error(e.to_string(), None))?
    };
    let action: ElicitationAction =
        serde_json::from_value(answer["action"].clone()).map_err(|_| {
            ErrorData::invalid_params(
                "the confirmation answer has no valid action (accept, decline or cancel)",
                None,
            )
        })?;
    let refused = |why: &str| {
        note(DECLINED);
        Confirmation::Refused(format!("{why}; nothing was changed"))
    };
    Ok(match action {
        ElicitationAction::Accept
            if answer["content"]["confirm"] == serde_json::Value::Bool(true) =>
        {
            note(CONFIRMED);
            Confirmation::Confirmed
        }
        ElicitationAction::Accept => refused("the person did not confirm"),
        ElicitationAction::Decline => refused("the person declined"),
        _ => refused("the person cancelled"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_state_round_trips_and_tampering_fails() {
        let st = State {
            u: "u".into(),
            t: "t".into(),
            d: "d".into(),
            e: 5,
            n: "n".into(),
        };
        let key = process_key().unwrap();
        let s = seal(key, &st).unwrap();
        assert_eq!(open(key, &s).unwrap().u, "u");
        let mut raw = B64.decode(&s).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        assert!(open(key, &B64.encode(raw)).is_none());
        assert!(open(key, "short").is_none());
        let other = MasterKey::from_bytes(&[7; 32]).unwrap();
        assert!(open(&other, &s).is_none(), "another key opens nothing");
    }
}
