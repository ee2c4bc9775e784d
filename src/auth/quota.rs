//! Daily sending limits per account: messages and recipients an
//! authenticated user (or the relay networks together) may send in a
//! rolling 24 hours, so one stolen password cannot burn the server's
//! address for everyone. The session asks through
//! [`SendingLimits`]; the counting, the clock and the file live here.
//!
//! Sends are counted in one-minute slots, so memory per account is bounded
//! (at most 1440 slots) whatever it sends. The counts are saved to
//! `DATA-DIR/sending-counts` (written to a temporary file and renamed over
//! the old one, at most once a minute as mail is sent, and at shutdown) and
//! read back at start, so a restart does not reset them. One line per slot:
//! `ACCOUNT MINUTE MESSAGES RECIPIENTS`, `ACCOUNT` being the user or
//! `relay-networks`.
//!
//! Per-account exceptions come from `--user-limits FILE`: lines
//! `ACCOUNT [messages=N] [recipients=N]`, `#` comments; 0 means no limit.
//! The file is read again on SIGHUP; one that does not load leaves the
//! exceptions in force as they were.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, RwLock};

use crate::proto::address::lookup_key;
use crate::proto::received::rfc5322_date;
use crate::proto::session::{Account, LimitReached, SendingLimits};

/// The window the limits apply to, in minutes: a rolling day.
const WINDOW_MINUTES: u64 = 24 * 60;
/// The account name of the relay networks in files.
const RELAY_NETWORKS: &str = "relay-networks";
/// The counts file in the data directory.
pub const COUNTS_FILE: &str = "sending-counts";
/// The counts are saved at most this often while mail is sent.
const SAVE_EVERY_SECONDS: u64 = 60;

/// The two limits of one account; 0 is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyLimits {
    /// Messages per rolling 24 hours.
    pub messages: u64,
    /// Recipients per rolling 24 hours.
    pub recipients: u64,
}

/// Why the limits or counts could not be read.
#[derive(Debug)]
pub enum QuotaError {
    /// A file could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A line of `--user-limits` is not `ACCOUNT [messages=N] [recipients=N]`.
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line number, from 1.
        line: usize,
    },
}

impl fmt::Display for QuotaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuotaError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            QuotaError::Syntax { path, line } => write!(
                f,
                "{}:{line}: expected `user@example.org messages=N recipients=N`",
                path.display()
            ),
        }
    }
}

impl std::error::Error for QuotaError {}

/// One minute's sends of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    minute: u64,
    messages: u64,
    recipients: u64,
}

/// The counts and limits of every account.
#[derive(Debug)]
pub struct SendingQuota {
    defaults: DailyLimits,
    exceptions: RwLock<HashMap<String, DailyLimits>>,
    /// The `--user-limits` file the exceptions come from, if any.
    user_limits: Option<PathBuf>,
    /// Where the counts are saved; `None` keeps them in memory only.
    file: Option<PathBuf>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    slots: HashMap<String, VecDeque<Slot>>,
    /// When the counts were last saved (seconds since the epoch).
    saved_at: u64,
}

impl SendingQuota {
    /// Limits of `defaults` for every account but those of `exceptions`,
    /// with counts kept in memory only.
    pub fn new(defaults: DailyLimits, exceptions: HashMap<String, DailyLimits>) -> SendingQuota {
        SendingQuota {
            defaults,
            exceptions: RwLock::new(exceptions),
            user_limits: None,
            file: None,
            state: Mutex::new(State::default()),
        }
    }

    /// The server's quota: exceptions from `user_limits` (if given), counts
    /// read from and saved to [`COUNTS_FILE`] in `data_dir`.
    pub fn open(
        defaults: DailyLimits,
        user_limits: Option<&Path>,
        data_dir: &Path,
    ) -> Result<SendingQuota, QuotaError> {
        let exceptions = match user_limits {
            Some(path) => read_exceptions(path, defaults)?,
            None => HashMap::new(),
        };
        let file = data_dir.join(COUNTS_FILE);
        let slots = match fs::read_to_string(&file) {
            Ok(text) => parse_counts(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => HashMap::new(),
            Err(source) => return Err(QuotaError::Io { path: file, source }),
        };
        Ok(SendingQuota {
            defaults,
            exceptions: RwLock::new(exceptions),
            user_limits: user_limits.map(Path::to_path_buf),
            file: Some(file),
            state: Mutex::new(State {
                slots,
                saved_at: now_seconds(),
            }),
        })
    }

    /// Reads the `--user-limits` file again (SIGHUP). The result is how many
    /// exceptions are now in force, `None` when there is no such file; on
    /// an error the old exceptions stay in force.
    pub fn reload_user_limits(&self) -> Result<Option<usize>, QuotaError> {
        let Some(path) = &self.user_limits else {
            return Ok(None);
        };
        let exceptions = read_exceptions(path, self.defaults)?;
        let count = exceptions.len();
        *self.exceptions.write() = exceptions;
        Ok(Some(count))
    }

    /// Writes the counts to their file (a temporary file renamed over it).
    pub fn save(&self) -> Result<(), QuotaError> {
        let mut state = self.state.lock();
        self.save_locked(&mut state, now_seconds())
    }

    fn save_locked(&self, state: &mut State, now: u64) -> Result<(), QuotaError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        state.saved_at = now;
        let oldest = now / 60 - WINDOW_MINUTES.min(now / 60);
        let mut text = String::new();
        for (account, slots) in &state.slots {
            for slot in slots.iter().filter(|s| s.minute > oldest) {
                text.push_str(&format!(
                    "{account} {} {} {}\n",
                    slot.minute, slot.messages, slot.recipients
                ));
            }
        }
        let tmp = file.with_extension("tmp");
        let io_error = |source| QuotaError::Io {
            path: file.clone(),
            source,
        };
        fs::write(&tmp, text).map_err(io_error)?;
        fs::rename(&tmp, file).map_err(io_error)
    }

    fn limits_of(&self, key: &str) -> DailyLimits {
        self.exceptions
            .read()
            .get(key)
            .copied()
            .unwrap_or(self.defaults)
    }

    /// [`SendingLimits::may_send`] at `now` (seconds since the epoch).
    fn may_send_at(
        &self,
        account: Account<'_>,
        recipients: usize,
        now: u64,
    ) -> Result<(), LimitReached> {
        let key = account_key(account);
        let limits = self.limits_of(&key);
        let mut state = self.state.lock();
        let Some(slots) = state.slots.get_mut(&key) else {
            return within(limits, 0, 0, recipients as u64)
                .map_err(|what| reached(what, limits, now));
        };
        expire(slots, now);
        let sent_messages: u64 = slots.iter().map(|s| s.messages).sum();
        let sent_recipients: u64 = slots.iter().map(|s| s.recipients).sum();
        let Err(what) = within(limits, sent_messages, sent_recipients, recipients as u64) else {
            return Ok(());
        };
        // Sending opens when enough of the oldest slots have left the window.
        let (mut messages, mut rcpts) = (sent_messages, sent_recipients);
        let mut reopens = now;
        for slot in slots.iter() {
            messages -= slot.messages;
            rcpts -= slot.recipients;
            reopens = (slot.minute + WINDOW_MINUTES + 1) * 60;
            if within(limits, messages, rcpts, recipients as u64).is_ok() {
                break;
            }
        }
        log::warn!(
            "sending limit reached: {} has sent {sent_messages} messages to {sent_recipients} \
             recipients in 24 hours (limits {} messages, {} recipients); sending opens again at {}",
            key,
            limits.messages,
            limits.recipients,
            rfc5322_date(reopens)
        );
        Err(reached(what, limits, reopens))
    }

    /// [`SendingLimits::sent`] at `now` (seconds since the epoch).
    fn sent_at(&self, account: Account<'_>, recipients: usize, now: u64) {
        let mut state = self.state.lock();
        let slots = state.slots.entry(account_key(account)).or_default();
        expire(slots, now);
        let minute = now / 60;
        match slots.back_mut() {
            Some(slot) if slot.minute == minute => {
                slot.messages += 1;
                slot.recipients += recipients as u64;
            }
            _ => slots.push_back(Slot {
                minute,
                messages: 1,
                recipients: recipients as u64,
            }),
        }
        if now >= state.saved_at + SAVE_EVERY_SECONDS {
            if let Err(e) = self.save_locked(&mut state, now) {
                log::error!("saving the sending counts: {e}");
            }
        }
    }
}

impl SendingLimits for SendingQuota {
    fn may_send(&self, account: Account<'_>, recipients: usize) -> Result<(), LimitReached> {
        self.may_send_at(account, recipients, now_seconds())
    }

    fn sent(&self, account: Account<'_>, recipients: usize) {
        self.sent_at(account, recipients, now_seconds());
    }
}

/// Whether one more message to `recipients` recipients keeps within
/// `limits`, after `messages` to `sent_recipients`; the limit passed if not.
fn within(
    limits: DailyLimits,
    messages: u64,
    sent_recipients: u64,
    recipients: u64,
) -> Result<(), &'static str> {
    if limits.messages > 0 && messages + 1 > limits.messages {
        return Err("messages");
    }
    if limits.recipients > 0 && sent_recipients + recipients > limits.recipients {
        return Err("recipients");
    }
    Ok(())
}

fn reached(what: &'static str, limits: DailyLimits, reopens: u64) -> LimitReached {
    LimitReached {
        what,
        limit: match what {
            "messages" => limits.messages,
            _ => limits.recipients,
        },
        reopens: rfc5322_date(reopens),
    }
}

/// Drops the slots that have left the window at `now`.
fn expire(slots: &mut VecDeque<Slot>, now: u64) {
    let minute = now / 60;
    while slots
        .front()
        .is_some_and(|s| s.minute + WINDOW_MINUTES <= minute)
    {
        slots.pop_front();
    }
}

/// The name an account is counted and configured under.
fn account_key(account: Account<'_>) -> String {
    match account {
        Account::User(user) => lookup_key(user),
        Account::RelayNetworks => RELAY_NETWORKS.to_string(),
    }
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The counts file; lines that do not read are skipped (the file is ours,
/// and a lost count only errs on the side of sending).
fn parse_counts(text: &str) -> HashMap<String, VecDeque<Slot>> {
    let mut slots: HashMap<String, VecDeque<Slot>> = HashMap::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [account, minute, messages, recipients] = words[..] else {
            continue;
        };
        let (Ok(minute), Ok(messages), Ok(recipients)) =
            (minute.parse(), messages.parse(), recipients.parse())
        else {
            continue;
        };
        let list = slots.entry(account.to_string()).or_default();
        list.push_back(Slot {
            minute,
            messages,
            recipients,
        });
        list.make_contiguous().sort_by_key(|s| s.minute);
    }
    slots
}

/// Reads `--user-limits`; a limit a line does not give is the default's.
fn read_exceptions(
    path: &Path,
    defaults: DailyLimits,
) -> Result<HashMap<String, DailyLimits>, QuotaError> {
    let text = fs::read_to_string(path).map_err(|source| QuotaError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_exceptions(&text, defaults).map_err(|line| QuotaError::Syntax {
        path: path.to_path_buf(),
        line,
    })
}

/// `ACCOUNT [messages=N] [recipients=N]` lines; a limit not given is the
/// one of `defaults`. The error is the bad line's number.
fn parse_exceptions(
    text: &str,
    defaults: DailyLimits,
) -> Result<HashMap<String, DailyLimits>, usize> {
    let mut exceptions = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        let Some(account) = words.next() else {
            continue;
        };
        let mut limits = defaults;
        for word in words {
            let (key, value) = word.split_once('=').ok_or(index + 1)?;
            let value: u64 = value.parse().map_err(|_| index + 1)?;
            match key {
                "messages" => limits.messages = value,
                "recipients" => limits.recipients = value,
                _ => return Err(index + 1),
            }
        }
        exceptions.insert(lookup_key(account), limits);
    }
    Ok(exceptions)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_795_718_460;
    const ALICE: Account<'static> = Account::User("alice@example.org");

    fn quota(messages: u64, recipients: u64) -> SendingQuota {
        SendingQuota::new(
            DailyLimits {
                messages,
                recipients,
            },
            HashMap::new(),
        )
    }

    #[test]
    fn a_rolling_day_of_messages_and_recipients() {
        let q = quota(3, 5);
        for minute in 0..3 {
            assert_eq!(q.may_send_at(ALICE, 1, T0 + minute * 60), Ok(()));
            q.sent_at(ALICE, 1, T0 + minute * 60);
        }
        let refused = q.may_send_at(ALICE, 1, T0 + 3600).unwrap_err();
        assert_eq!(refused.what, "messages");
        assert_eq!(refused.limit, 3);
        // The first send leaves the window a day after its minute.
        let opens = (T0 / 60 + WINDOW_MINUTES + 1) * 60;
        assert_eq!(refused.reopens, rfc5322_date(opens));
        assert_eq!(q.may_send_at(ALICE, 1, opens), Ok(()));
        // Others are not affected; the relay networks share one count.
        assert_eq!(
            q.may_send_at(Account::User("bob@example.org"), 1, T0),
            Ok(())
        );
        assert_eq!(q.may_send_at(Account::RelayNetworks, 5, T0), Ok(()));
        let refused = q.may_send_at(Account::RelayNetworks, 6, T0).unwrap_err();
        assert_eq!(refused.what, "recipients");
        // The user's name is matched in any case.
        q.sent_at(Account::User("Bob@Example.org"), 4, T0);
        let refused = q
            .may_send_at(Account::User("bob@example.org"), 2, T0)
            .unwrap_err();
        assert_eq!(refused.what, "recipients");
        // 0 is no limit.
        let open = quota(0, 0);
        for _ in 0..100 {
            open.sent_at(ALICE, 100, T0);
        }
        assert_eq!(open.may_send_at(ALICE, 100, T0), Ok(()));
    }

    #[test]
    fn exceptions_and_counts_files() {
        let defaults = DailyLimits {
            messages: 1000,
            recipients: 2000,
        };
        let exceptions = parse_exceptions(
            "# bulk sender\nnews@example.org messages=50000 recipients=0\n\
             Printer@Example.org messages=10\n\nrelay-networks recipients=7\n",
            defaults,
        )
        .unwrap();
        let q = SendingQuota::new(defaults, exceptions);
        assert_eq!(
            q.limits_of("news@example.org"),
            DailyLimits {
                messages: 50000,
                recipients: 0
            }
        );
        assert_eq!(q.limits_of("printer@example.org").recipients, 2000);
        assert_eq!(q.limits_of("relay-networks").recipients, 7);
        assert_eq!(q.limits_of("other@example.org").messages, 1000);
        assert_eq!(parse_exceptions("a@b messages=x", defaults), Err(1));
        assert_eq!(parse_exceptions("a@b\na@b colour=red", defaults), Err(2));

        let counts =
            parse_counts("alice@example.org 100 2 3\nalice@example.org 99 1 1\nbad line\n");
        let slots = &counts["alice@example.org"];
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[0].minute, 99, "oldest first");
    }

    #[test]
    fn the_user_limits_file_is_read_again_and_a_bad_one_changes_nothing() {
        let dir = crate::test_fixtures::TempDir::new("quota-reload");
        let file = dir.path().join("user-limits");
        fs::write(&file, "news@example.org messages=5\n").unwrap();
        let defaults = DailyLimits {
            messages: 1,
            recipients: 0,
        };
        let q = SendingQuota::open(defaults, Some(&file), dir.path()).unwrap();
        assert_eq!(q.limits_of("news@example.org").messages, 5);
        fs::write(&file, "news@example.org messages=9\nprinter@example.org\n").unwrap();
        assert_eq!(q.reload_user_limits().unwrap(), Some(2));
        assert_eq!(q.limits_of("news@example.org").messages, 9);
        fs::write(&file, "news@example.org messages=lots\n").unwrap();
        let error = q.reload_user_limits().unwrap_err().to_string();
        assert!(
            error.ends_with("user-limits:1: expected `user@example.org messages=N recipients=N`"),
            "{error}"
        );
        assert_eq!(q.limits_of("news@example.org").messages, 9);
        let without = SendingQuota::open(defaults, None, dir.path()).unwrap();
        assert_eq!(without.reload_user_limits().unwrap(), None);
    }
}
