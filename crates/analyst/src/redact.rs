//! Redaction before anything leaves the process: secrets, e-mail addresses,
//! IP addresses and configured user-id patterns become stable pseudonyms
//! (`[EMAIL_1]`, `[IP_2]`, `[SECRET_1]`, `[USER_1]`): the same value gets the
//! same pseudonym within one [`Pseudonyms`] table (one incident), so a model
//! can still tell two addresses apart. [`Pseudonyms::restore`] maps them
//! back in an answer for the operator — except secrets, which never come
//! back.
//!
//! Redaction works on the strings of a JSON value (keys and leaves), so the
//! request stays valid JSON whatever the patterns match.

use std::collections::HashMap;

use regex::Regex;
use serde_json::Value;

/// What a pattern finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    Secret,
    Email,
    Ip,
    User,
}

impl Class {
    fn label(self) -> &'static str {
        match self {
            Class::Secret => "SECRET",
            Class::Email => "EMAIL",
            Class::Ip => "IP",
            Class::User => "USER",
        }
    }
}

struct Rule {
    re: Regex,
    class: Class,
    /// The capture group holding the sensitive part (0: the whole match).
    group: usize,
}

/// A pattern that is not a valid regular expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("redaction pattern {pattern:?} is not a valid regular expression: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

/// The compiled rules, in the order they apply.
pub struct Redactor {
    rules: Vec<Rule>,
}

/// Built-in rules: (pattern, class, group). Order matters: whole blocks and
/// structured tokens before the looser key=value and address patterns.
const BUILTIN: &[(&str, Class, usize)] = &[
    // PEM private keys.
    (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        Class::Secret,
        0,
    ),
    // JSON Web Tokens.
    (
        r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}",
        Class::Secret,
        0,
    ),
    // Passwords in URLs: scheme://user:password@host.
    (
        r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:)([^@\s/]+)@",
        Class::Secret,
        2,
    ),
    // Bearer and basic credentials.
    (
        r"(?i)\b(?:bearer|basic)\s+([A-Za-z0-9._~+/=-]{8,})",
        Class::Secret,
        1,
    ),
    // Well-known API key shapes (OpenAI, Anthropic, AWS, GitHub, Slack,
    // Google).
    (
        r"\b(?:sk-(?:ant-)?[A-Za-z0-9_-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})\b",
        Class::Secret,
        0,
    ),
    // key=value and key: value secrets.
    (
        r#"(?i)\b(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|client[_-]?secret|credentials?)\s*[=:]\s*"?([^\s"',;&]+)"#,
        Class::Secret,
        1,
    ),
    // E-mail addresses.
    (
        r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b",
        Class::Email,
        0,
    ),
    // IPv4.
    (
        r"\b(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}\b",
        Class::Ip,
        0,
    ),
    // IPv6 (full, or compressed with ::).
    (
        r"(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b|(?i)\b(?:[0-9a-f]{1,4}:){1,6}:(?:[0-9a-f]{1,4}(?::[0-9a-f]{1,4}){0,5})?\b",
        Class::Ip,
        0,
    ),
];

impl Redactor {
    /// The built-in rules plus `user_ids` (patterns of user identifiers)
    /// and `extra` (more secret patterns), both regular expressions.
    pub fn new(user_ids: &[String], extra: &[String]) -> Result<Self, PatternError> {
        let compile = |p: &str| {
            Regex::new(p).map_err(|e| PatternError {
                pattern: p.to_string(),
                reason: e.to_string(),
            })
        };
        let mut rules = Vec::new();
        for (p, class, group) in BUILTIN {
            rules.push(Rule {
                re: compile(p)?,
                class: *class,
                group: *group,
            });
        }
        for p in extra {
            rules.push(Rule {
                re: compile(p)?,
                class: Class::Secret,
                group: 0,
            });
        }
        for p in user_ids {
            rules.push(Rule {
                re: compile(p)?,
                class: Class::User,
                group: 0,
            });
        }
        Ok(Self { rules })
    }

    /// `text` with every sensitive part replaced by its pseudonym.
    pub fn redact(&self, text: &str, p: &mut Pseudonyms) -> String {
        let mut out = text.to_string();
        for rule in &self.rules {
            if !rule.re.is_match(&out) {
                continue;
            }
            let mut next = String::with_capacity(out.len());
            let mut last = 0;
            for caps in rule.re.captures_iter(&out) {
                let Some(m) = caps.get(rule.group) else {
                    continue;
                };
                next.push_str(&out[last..m.start()]);
                next.push_str(&p.name(rule.class, m.as_str()));
                last = m.end();
            }
            next.push_str(&out[last..]);
            out = next;
        }
        out
    }

    /// Redacts every string (keys included) of a JSON value in place.
    pub fn redact_value(&self, v: &mut Value, p: &mut Pseudonyms) {
        match v {
            Value::String(s) => *s = self.redact(s, p),
            Value::Array(a) => a.iter_mut().for_each(|x| self.redact_value(x, p)),
            Value::Object(o) => {
                let old = std::mem::take(o);
                for (k, mut x) in old {
                    self.redact_value(&mut x, p);
                    o.insert(self.redact(&k, p), x);
                }
            }
            _ => {}
        }
    }
}

/// Pseudonyms handed out within one incident.
#[derive(Debug, Default, Clone)]
pub struct Pseudonyms {
    by_value: HashMap<(Class, String), String>,
    /// Pseudonym → original, for everything but secrets.
    back: HashMap<String, String>,
    counts: HashMap<Class, usize>,
}

impl Pseudonyms {
    fn name(&mut self, class: Class, value: &str) -> String {
        if let Some(n) = self.by_value.get(&(class, value.to_string())) {
            return n.clone();
        }
        let k = self.counts.entry(class).or_default();
        *k += 1;
        let name = format!("[{}_{}]", class.label(), k);
        self.by_value
            .insert((class, value.to_string()), name.clone());
        if class != Class::Secret {
            self.back.insert(name.clone(), value.to_string());
        }
        name
    }

    /// How many values were replaced, by class.
    pub fn count(&self, class: Class) -> usize {
        self.counts.get(&class).copied().unwrap_or(0)
    }

    /// `text` with pseudonyms (other than secrets) mapped back.
    pub fn restore(&self, text: &str) -> String {
        if self.back.is_empty() || !text.contains('[') {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find('[') {
            out.push_str(&rest[..i]);
            let tail = &rest[i..];
            match tail.find(']').map(|j| &tail[..=j]) {
                Some(token) if self.back.contains_key(token) => {
                    out.push_str(&self.back[token]);
                    rest = &tail[token.len()..];
                }
                _ => {
                    out.push('[');
                    rest = &tail[1..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// Maps pseudonyms back in every string of a JSON value.
    pub fn restore_value(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.restore(s),
            Value::Array(a) => a.iter_mut().for_each(|x| self.restore_value(x)),
            Value::Object(o) => o.values_mut().for_each(|x| self.restore_value(x)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor() -> Redactor {
        Redactor::new(
            &[r"\buid-\d{6}\b".into()],
            &[r"\bcorp-[a-z0-9]{12}\b".into()],
        )
        .expect("patterns")
    }

    #[test]
    fn every_kind_of_secret_is_replaced() {
        let r = redactor();
        let mut p = Pseudonyms::default();
        let cases = [
            "db url postgres://app:hunter2@db.internal:5432/orders",
            "Authorization: Bearer abcdefghijklmnop123456",
            "password=s3cr3t!x and api_key: AbCdEf123456",
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "key sk-proj-abcdefghijklmnopqrstuvwx and AKIAIOSFODNN7EXAMPLE",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----",
            "custom corp-abcdef123456 leaked",
        ];
        let secrets = [
            "hunter2",
            "abcdefghijklmnop123456",
            "s3cr3t!x",
            "AbCdEf123456",
            "dozjgNryP4J3",
            "sk-proj-abcdefghijklmnopqrstuvwx",
            "AKIAIOSFODNN7EXAMPLE",
            "MIIEpAIBAAKCAQEA",
            "corp-abcdef123456",
        ];
        let all: String = cases
            .iter()
            .map(|c| r.redact(c, &mut p))
            .collect::<Vec<_>>()
            .join("\n");
        for s in secrets {
            assert!(!all.contains(s), "{s} survived in:\n{all}");
        }
        assert!(all.contains("postgres://app:[SECRET_"), "{all}");
        // Secrets never come back.
        assert!(!p.restore(&all).contains("hunter2"));
    }

    #[test]
    fn people_and_addresses_get_stable_pseudonyms_that_map_back() {
        let r = redactor();
        let mut p = Pseudonyms::default();
        let a = r.redact(
            "user alice@example.com (uid-123456) from 10.1.2.3 and 2001:db8::7",
            &mut p,
        );
        let b = r.redact(
            "alice@example.com again from 10.1.2.3; bob@example.org",
            &mut p,
        );
        assert_eq!(a, "user [EMAIL_1] ([USER_1]) from [IP_1] and [IP_2]");
        assert_eq!(b, "[EMAIL_1] again from [IP_1]; [EMAIL_2]");
        assert_eq!(
            p.restore("contact [EMAIL_2] about [IP_1]; [UNKNOWN_1] stays [x"),
            "contact bob@example.org about 10.1.2.3; [UNKNOWN_1] stays [x"
        );
        // Ordinary text, versions, times and service names are left alone.
        let plain = "checkout-service v1.2.3 at 09:15:00, p95 250 ms, 3 replicas";
        assert_eq!(r.redact(plain, &mut p), plain);
    }

    #[test]
    fn json_stays_json() {
        let r = redactor();
        let mut p = Pseudonyms::default();
        let mut v = serde_json::json!({
            "summary": "login failed for \"carol@example.com\" with password=\"x\\\"y\"",
            "carol@example.com": [1, "10.0.0.1"],
        });
        r.redact_value(&mut v, &mut p);
        let text = v.to_string();
        assert!(!text.contains("carol@"), "{text}");
        assert!(serde_json::from_str::<Value>(&text).is_ok());
        p.restore_value(&mut v);
        assert_eq!(v["[EMAIL_1]"][1], "10.0.0.1");
    }

    #[test]
    fn a_bad_pattern_is_named() {
        let e = Redactor::new(&["(unclosed".into()], &[])
            .err()
            .expect("error");
        assert!(e.to_string().contains("(unclosed"));
    }
}
