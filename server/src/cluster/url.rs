//! The `--cluster` URL: where Redis is, and the password, which is never
//! printed.
//!
//! Only the form the daemon documents is taken, `redis://[:PASSWORD@]HOST:PORT[/DB]`,
//! and it is checked when the options are read, so a typo is a usage
//! error rather than a daemon that starts and cannot reach anything. Its
//! [`Display`](std::fmt::Display) shows the password as `***`: that is the
//! only way it reaches a log or an error message.

use std::fmt;

/// The default Redis port, for a URL that names none.
pub const DEFAULT_REDIS_PORT: u16 = 6379;

/// Where the cluster's Redis is.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// The password for `AUTH`, if any. Never printed.
    password: Option<String>,
    /// The logical database (`SELECT`).
    pub db: i64,
}

/// Why a `--cluster` URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Occurs when the URL does not start with `redis://`.
    #[error("must start with redis:// (redis://[:PASSWORD@]HOST:PORT[/DB])")]
    Scheme,
    /// Occurs when there is no host.
    #[error("names no host (redis://[:PASSWORD@]HOST:PORT[/DB])")]
    NoHost,
    /// Occurs when the port is not a number from 1 to 65535.
    #[error("has a bad port (a number from 1 to 65535)")]
    Port,
    /// Occurs when the database is not a number from 0 to 1,000,000.
    #[error("has a bad database number after the / (0 or more)")]
    Db,
    /// Occurs when a user name is given: only a password is supported.
    #[error("gives a user name; write the password alone, as redis://:PASSWORD@HOST:PORT")]
    User,
}

impl RedisUrl {
    /// Reads `redis://[:PASSWORD@]HOST[:PORT][/DB]`.
    ///
    /// # Errors
    /// A [`UrlError`] saying what is wrong; it never contains the password.
    pub fn parse(s: &str) -> Result<RedisUrl, UrlError> {
        let rest = s.strip_prefix("redis://").ok_or(UrlError::Scheme)?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((auth, rest)) => (Some(auth), rest),
            None => (None, rest),
        };
        let password = match auth {
            None => None,
            Some(auth) => match auth.strip_prefix(':') {
                Some(password) => Some(percent_decode(password)),
                None => return Err(UrlError::User),
            },
        };
        let (hostport, db) = match rest.split_once('/') {
            Some((hostport, "")) => (hostport, 0),
            Some((hostport, db)) => match db.parse::<i64>() {
                Ok(n) if (0..=1_000_000).contains(&n) => (hostport, n),
                _ => return Err(UrlError::Db),
            },
            None => (rest, 0),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or(UrlError::NoHost)?;
            match after.strip_prefix(':') {
                Some(port) => (host, parse_port(port)?),
                None if after.is_empty() => (host, DEFAULT_REDIS_PORT),
                None => return Err(UrlError::Port),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, parse_port(port)?),
                None => (hostport, DEFAULT_REDIS_PORT),
            }
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        Ok(RedisUrl {
            host: host.to_string(),
            port,
            password: password.filter(|p| !p.is_empty()),
            db,
        })
    }

    /// What the `redis` crate connects with (password included).
    ///
    /// # Errors
    /// What the crate says about the address (it checks nothing more).
    pub(crate) fn connection_info(&self) -> redis::RedisResult<redis::ConnectionInfo> {
        use redis::IntoConnectionInfo;
        let addr = redis::ConnectionAddr::Tcp(self.host.clone(), self.port);
        let mut settings = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(password) = &self.password {
            settings = settings.set_password(password);
        }
        Ok(addr.into_connection_info()?.set_redis_settings(settings))
    }

    /// `redis://HOST:PORT`, as the start-up errors name it.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("redis://[{}]:{}", self.host, self.port)
        } else {
            format!("redis://{}:{}", self.host, self.port)
        }
    }
}

fn parse_port(s: &str) -> Result<u16, UrlError> {
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(UrlError::Port),
        Ok(port) => Ok(port),
    }
}

/// Decodes `%XX` escapes (a password may hold `@` or `/` written so);
/// anything else is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for RedisUrl {
    /// `redis://:***@host:port/db`: the password is never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = if self.password.is_some() { ":***@" } else { "" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        write!(f, "redis://{auth}{host}:{}/{}", self.port, self.db)
    }
}

impl fmt::Debug for RedisUrl {
    /// As [`fmt::Display`]: a configuration dumped with `{:?}` shows no
    /// password either.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_is_read_and_printed_without_its_password() {
        let url = RedisUrl::parse("redis://:s3cret@10.0.0.5:6380/2").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.db), ("10.0.0.5", 6380, 2));
        assert_eq!(url.password.as_deref(), Some("s3cret"));
        assert_eq!(url.to_string(), "redis://:***@10.0.0.5:6380/2");
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(url.address(), "redis://10.0.0.5:6380");
    }

    #[test]
    fn port_and_database_have_defaults() {
        let url = RedisUrl::parse("redis://localhost").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.db), ("localhost", 6379, 0));
        assert_eq!(url.to_string(), "redis://localhost:6379/0");
        let v6 = RedisUrl::parse("redis://[::1]:7000/").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 7000));
        assert_eq!(v6.address(), "redis://[::1]:7000");
    }

    #[test]
    fn an_escaped_password_is_decoded() {
        let url = RedisUrl::parse("redis://:a%40b%2Fc@h:1").unwrap();
        assert_eq!(url.password.as_deref(), Some("a@b/c"));
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason_that_hides_the_password() {
        for (input, error) in [
            ("http://h:1", UrlError::Scheme),
            ("redis://:pw@:1", UrlError::NoHost),
            ("redis://:pw@h:0", UrlError::Port),
            ("redis://:pw@h:99999", UrlError::Port),
            ("redis://:pw@h:1/x", UrlError::Db),
            ("redis://user:pw@h:1", UrlError::User),
        ] {
            let got = RedisUrl::parse(input).unwrap_err();
            assert_eq!(got, error, "{input}");
            assert!(!got.to_string().contains("pw"), "{input}");
        }
    }
}
