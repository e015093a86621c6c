//! No one spends more than allowed: the quota settings and the ledger's
//! arithmetic. The ledger itself (one SQLite-backed Durable Object) keeps
//! the rows; every decision about them is here, host-tested.
//!
//! The unit is seconds of video: a job reserves its `duration` (4 s when the
//! request names none, the upstream's default), times `QUOTA_PRO_WEIGHT` for
//! `sora-2-pro`. Days are UTC days, numbered from the Unix epoch: Unix time
//! has exactly 86,400 s a day, so no calendar is needed.

/// A day of Unix time, in ms.
pub const DAY_MS: u64 = 86_400_000;
/// The seconds a request without `duration` reserves: the upstream's default.
pub const DEFAULT_DURATION_S: u64 = 4;
/// `QUOTA_PRO_WEIGHT` when unset.
pub const DEFAULT_PRO_WEIGHT: u64 = 3;
/// `QUOTA_AMBIGUOUS_TTL` when unset: how long a reservation whose generate
/// had no clear answer waits for its job before it is released.
pub const DEFAULT_AMBIGUOUS_TTL_MS: u64 = 10 * 60 * 1000;
/// A job not settled this long after its reservation is committed (flagged).
pub const SETTLE_BOUND_MS: u64 = 60 * 60 * 1000;
/// `Retry-After` when the in-flight limit is reached: a job settling frees a slot.
pub const IN_FLIGHT_RETRY_S: u64 = 15;

/// The quota settings as they come from the environment.
#[derive(Clone, Debug, Default)]
pub struct QuotaEnv {
    /// `QUOTA_USER_DAILY_SECONDS`.
    pub user_daily: Option<String>,
    /// `QUOTA_GLOBAL_DAILY_SECONDS`.
    pub global_daily: Option<String>,
    /// `QUOTA_USER_IN_FLIGHT`.
    pub user_in_flight: Option<String>,
    /// `QUOTA_PRO_WEIGHT`.
    pub pro_weight: Option<String>,
    /// `QUOTA_AMBIGUOUS_TTL` (ms).
    pub ambiguous_ttl_ms: Option<String>,
}

/// The quotas the worker enforces; `None` is no limit of that kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Seconds of video per subject per UTC day.
    pub user_daily: Option<u64>,
    /// Seconds of video for everyone per UTC day.
    pub global_daily: Option<u64>,
    /// Jobs per subject not yet settled.
    pub user_in_flight: Option<u64>,
    /// The weight of a `sora-2-pro` second.
    pub pro_weight: u64,
    /// See [`DEFAULT_AMBIGUOUS_TTL_MS`].
    pub ambiguous_ttl_ms: u64,
}

fn whole(name: &str, text: &Option<String>) -> Result<Option<u64>, String> {
    match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse::<u64>()
            .map(Some)
            .map_err(|_| format!("{name} must be a whole number (got a value that is not)")),
    }
}

impl Quotas {
    /// Reads the settings. Fails closed: a value that does not parse is a
    /// problem naming the variable, never "no limit".
    ///
    /// # Errors
    /// The problem, for a 503 `not_configured`.
    pub fn from_env(env: &QuotaEnv) -> Result<Quotas, String> {
        let pro_weight = whole("QUOTA_PRO_WEIGHT", &env.pro_weight)?.unwrap_or(DEFAULT_PRO_WEIGHT);
        if pro_weight == 0 {
            return Err("QUOTA_PRO_WEIGHT must be at least 1".to_string());
        }
        Ok(Quotas {
            user_daily: whole("QUOTA_USER_DAILY_SECONDS", &env.user_daily)?,
            global_daily: whole("QUOTA_GLOBAL_DAILY_SECONDS", &env.global_daily)?,
            user_in_flight: whole("QUOTA_USER_IN_FLIGHT", &env.user_in_flight)?,
            pro_weight,
            ambiguous_ttl_ms: whole("QUOTA_AMBIGUOUS_TTL", &env.ambiguous_ttl_ms)?
                .unwrap_or(DEFAULT_AMBIGUOUS_TTL_MS),
        })
    }

    /// Whether any limit is set (else the ledger is not asked at all).
    pub fn any(&self) -> bool {
        self.user_daily.is_some() || self.global_daily.is_some() || self.user_in_flight.is_some()
    }

    /// The seconds a job of `model` and `duration` counts for.
    pub fn seconds(&self, model: &str, duration: Option<u64>) -> u64 {
        let base = duration.unwrap_or(DEFAULT_DURATION_S);
        if model == "sora-2-pro" {
            base * self.pro_weight
        } else {
            base
        }
    }
}

/// The UTC day of `now_ms`, as a day number.
pub fn day_of(now_ms: u64) -> u64 {
    now_ms / DAY_MS
}

/// When day `day` ends (ms).
pub fn day_end_ms(day: u64) -> u64 {
    (day + 1) * DAY_MS
}

/// Where a subject and everyone stand today, in seconds and jobs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Standing {
    /// The subject's reserved plus committed seconds.
    pub user_seconds: u64,
    /// The subject's jobs reserved and not yet settled.
    pub user_in_flight: u64,
    /// Everyone's reserved plus committed seconds.
    pub global_seconds: u64,
}

/// Which limit a reservation would pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exceeded {
    /// `user_daily`, `global_daily` or `user_in_flight`.
    pub limit: &'static str,
    /// What is left of it (seconds, or jobs for the in-flight limit).
    pub left: u64,
    /// When to try again, in seconds.
    pub retry_after_s: u64,
}

/// Whether `seconds` more may be reserved for a subject standing at
/// `standing` at `now_ms`. `user_limit` is the subject's daily limit (the
/// token's `quota_seconds` claim, else `QUOTA_USER_DAILY_SECONDS`).
///
/// # Errors
/// The first limit it would pass.
pub fn check(
    quotas: &Quotas,
    user_limit: Option<u64>,
    standing: Standing,
    seconds: u64,
    now_ms: u64,
) -> Result<(), Exceeded> {
    let until_tomorrow = (day_end_ms(day_of(now_ms)) - now_ms).div_ceil(1000);
    if let Some(limit) = quotas.user_in_flight {
        if standing.user_in_flight >= limit {
            return Err(Exceeded {
                limit: "user_in_flight",
                left: 0,
                retry_after_s: IN_FLIGHT_RETRY_S,
            });
        }
    }
    if let Some(limit) = user_limit {
        if standing.user_seconds + seconds > limit {
            return Err(Exceeded {
                limit: "user_daily",
                left: limit.saturating_sub(standing.user_seconds),
                retry_after_s: until_tomorrow,
            });
        }
    }
    if let Some(limit) = quotas.global_daily {
        if standing.global_seconds + seconds > limit {
            return Err(Exceeded {
                limit: "global_daily",
                left: limit.saturating_sub(standing.global_seconds),
                retry_after_s: until_tomorrow,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quotas(user: Option<u64>, global: Option<u64>, in_flight: Option<u64>) -> Quotas {
        Quotas {
            user_daily: user,
            global_daily: global,
            user_in_flight: in_flight,
            pro_weight: 3,
            ambiguous_ttl_ms: DEFAULT_AMBIGUOUS_TTL_MS,
        }
    }

    #[test]
    fn settings_fail_closed() {
        let env = |pairs: &[(&str, &str)]| {
            let get = |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            };
            QuotaEnv {
                user_daily: get("user"),
                global_daily: get("global"),
                user_in_flight: get("flight"),
                pro_weight: get("pro"),
                ambiguous_ttl_ms: get("ttl"),
            }
        };
        let none = Quotas::from_env(&env(&[])).unwrap();
        assert!(!none.any());
        assert_eq!(
            (none.pro_weight, none.ambiguous_ttl_ms),
            (3, DEFAULT_AMBIGUOUS_TTL_MS)
        );
        let set = Quotas::from_env(&env(&[
            ("user", "40"),
            ("global", " 100 "),
            ("flight", "3"),
            ("pro", "2"),
        ]))
        .unwrap();
        assert_eq!(
            set,
            Quotas {
                pro_weight: 2,
                ..quotas(Some(40), Some(100), Some(3))
            }
        );
        for (name, bad, variable) in [
            (
                "negative",
                env(&[("user", "-1")]),
                "QUOTA_USER_DAILY_SECONDS",
            ),
            (
                "words",
                env(&[("global", "lots")]),
                "QUOTA_GLOBAL_DAILY_SECONDS",
            ),
            (
                "fraction",
                env(&[("flight", "1.5")]),
                "QUOTA_USER_IN_FLIGHT",
            ),
            ("zero_weight", env(&[("pro", "0")]), "QUOTA_PRO_WEIGHT"),
            ("ttl", env(&[("ttl", "soon")]), "QUOTA_AMBIGUOUS_TTL"),
        ] {
            let problem = Quotas::from_env(&bad).expect_err(name);
            assert!(problem.contains(variable), "{name}: {problem}");
        }
    }

    #[test]
    fn seconds_of_a_job() {
        let q = quotas(None, None, None);
        assert_eq!(q.seconds("sora-2", Some(8)), 8);
        assert_eq!(q.seconds("sora-2", None), DEFAULT_DURATION_S, "never 0");
        assert_eq!(q.seconds("sora-2-pro", Some(12)), 36);
        assert_eq!(q.seconds("sora-2-pro", None), 12);
    }

    #[test]
    fn limits() {
        let noon = 20_000 * DAY_MS + DAY_MS / 2;
        let at = |user, flight, global| Standing {
            user_seconds: user,
            user_in_flight: flight,
            global_seconds: global,
        };
        let q = quotas(Some(40), Some(100), Some(3));
        assert_eq!(check(&q, Some(40), at(36, 2, 90), 4, noon), Ok(()));
        assert_eq!(
            check(&q, Some(40), at(40, 0, 0), 4, noon),
            Err(Exceeded {
                limit: "user_daily",
                left: 0,
                retry_after_s: DAY_MS / 2000
            })
        );
        assert_eq!(
            check(&q, Some(40), at(38, 0, 0), 4, noon).unwrap_err().left,
            2
        );
        assert_eq!(
            check(&q, Some(40), at(0, 3, 0), 4, noon),
            Err(Exceeded {
                limit: "user_in_flight",
                left: 0,
                retry_after_s: IN_FLIGHT_RETRY_S
            })
        );
        assert_eq!(
            check(&q, Some(40), at(0, 0, 98), 4, noon)
                .unwrap_err()
                .limit,
            "global_daily"
        );
        assert_eq!(
            check(&q, Some(400), at(41, 0, 0), 4, noon),
            Ok(()),
            "a claim raises the subject's limit"
        );
        assert_eq!(
            check(
                &quotas(None, None, None),
                None,
                at(1 << 40, 99, 1 << 40),
                4,
                noon
            ),
            Ok(())
        );
        assert_eq!(day_end_ms(day_of(noon)) - noon, DAY_MS / 2);
    }
}
