//! The queue's two lanes. Messages (email) and notices about them (webhooks
//! out, feedback into Keycloak: rows of the transports `webhook` and
//! `keycloak`) share one table, but are claimed apart, each by its own
//! worker slots (see [`crate::queue::worker`]): a receiver that never
//! answers can then keep only the notices' slots busy, never the email's.
//!
//! Each lane's due rows are read in order from an index of that lane's rows
//! only (`messages_due`, `notices_due`): a backlog of one lane never makes
//! the other lane's claims read it. Both databases use a partial index only
//! for a statement that states the index's condition, so the conditions
//! below are written once, as literals, and the claims and the migrations
//! spell them the same (a test checks it).
//!
//! Notices are claimed fairly across their destinations (a tenant's webhook
//! receiver, a tenant's Keycloak): one destination has at most
//! [`NOTICES_PER_DESTINATION`] of its notices in `sending` at once, so a
//! receiver that never answers, however many of its notices are due, holds
//! only that many slots while every other destination's notices are claimed.
//! The notices' claim walks the destinations that have notices waiting (one
//! index step per tenant, in `notices_waiting`: tenant, transport,
//! next_attempt_at) and takes the oldest due of each, up to its room; a
//! backlog of one destination is never read past. Of those, the rows that
//! would be their destination's first in `sending` go first, then the
//! second, and so on: when receivers that never answer hold every notice
//! slot between them, each slot their attempts give up (at the timeout)
//! goes to a destination waiting with fewer in flight.

use crate::{feedback, webhooks};

/// A destination's notices in `sending` at once, counted over every
/// replica (two replicas claiming at the same moment may each fill it): a
/// quarter of the worker's default notice slots, so that at least four
/// receivers that never answer are needed to hold them all.
pub const NOTICES_PER_DESTINATION: u32 = 8;

/// The SQL condition of a notice's row (the `notices_due` index's).
macro_rules! notice_rows {
    () => {
        "transport IN ('webhook', 'keycloak')"
    };
}

/// The SQL condition of a notice waiting for its next attempt (the
/// `notices_waiting` index's).
macro_rules! waiting_notices {
    () => {
        "transport IN ('webhook', 'keycloak') AND status IN ('queued', 'retrying')"
    };
}

/// The notices' transports as rows of a column `transport` (each is a
/// destination of every tenant).
macro_rules! notice_transports {
    () => {
        "SELECT 'webhook' AS transport UNION ALL SELECT 'keycloak'"
    };
}

/// The SQL condition of a message's row (the `messages_due` index's).
macro_rules! message_rows {
    () => {
        "transport NOT IN ('webhook', 'keycloak')"
    };
}

/// A store's claim statement of each lane, from its `claim!` macro (which
/// takes a lane's row condition) and its `claim_notices!` macro (the
/// notices' claim, fair across destinations), and `claim_statement`
/// choosing one.
macro_rules! lane_claims {
    ($claim:ident, $claim_notices:ident) => {
        /// The claim of the messages' lane.
        #[doc(hidden)]
        pub const CLAIM_MESSAGES: &str = $claim!($crate::queue::lane::message_rows!());
        /// The claim of the notices' lane.
        #[doc(hidden)]
        pub const CLAIM_NOTICES: &str = $claim_notices!();

        /// The claim statement of `lane`.
        #[doc(hidden)]
        pub fn claim_statement(lane: Lane) -> &'static str {
            match lane {
                Lane::Messages => CLAIM_MESSAGES,
                Lane::Notices => CLAIM_NOTICES,
            }
        }
    };
}

pub(crate) use {lane_claims, message_rows, notice_rows, notice_transports, waiting_notices};

/// Which rows a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Email, through the configured transports.
    Messages,
    /// Webhooks out and feedback into Keycloak: retried for 24 hours, and
    /// never the subject of a webhook themselves.
    Notices,
}

impl Lane {
    /// The lane of a row of `transport`.
    pub fn of(transport: &str) -> Lane {
        match transport == webhooks::TRANSPORT || transport == feedback::TRANSPORT {
            true => Lane::Notices,
            false => Lane::Messages,
        }
    }

    /// The SQL condition of its rows.
    pub fn rows(self) -> &'static str {
        match self {
            Lane::Messages => message_rows!(),
            Lane::Notices => notice_rows!(),
        }
    }

    /// Its name in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::Messages => "messages",
            Lane::Notices => "notices",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_notice_transports_are_the_ones_the_sql_names() {
        assert_eq!(Lane::of(webhooks::TRANSPORT), Lane::Notices);
        assert_eq!(Lane::of(feedback::TRANSPORT), Lane::Notices);
        assert_eq!(Lane::of("default"), Lane::Messages);
        let named = format!("('{}', '{}')", webhooks::TRANSPORT, feedback::TRANSPORT);
        assert_eq!(Lane::Notices.rows(), format!("transport IN {named}"));
        assert_eq!(Lane::Messages.rows(), format!("transport NOT IN {named}"));
        assert_eq!(
            notice_transports!(),
            format!(
                "SELECT '{}' AS transport UNION ALL SELECT '{}'",
                webhooks::TRANSPORT,
                feedback::TRANSPORT
            )
        );
    }

    #[test]
    fn the_lanes_indexes_and_claims_state_the_same_conditions() {
        let migrations = [
            include_str!("../../migrations/0009_lanes.sql"),
            include_str!("../../migrations-postgres/0014_lanes.sql"),
        ];
        for lane in [Lane::Messages, Lane::Notices] {
            for migration in migrations {
                assert!(migration.contains(&format!("WHERE {}", lane.rows())));
            }
        }
        let claims = [
            crate::queue::sqlite::claim_statement(Lane::Messages),
            crate::queue::postgres::claim_statement(Lane::Messages),
        ];
        for claim in claims {
            // Each kind of due row: queued, retrying, abandoned.
            let rows = format!("AND {} ", Lane::Messages.rows());
            assert_eq!(claim.matches(&rows).count(), 3);
        }
        let waiting = [
            include_str!("../../migrations/0011_notices_waiting.sql"),
            include_str!("../../migrations-postgres/0016_notices_waiting.sql"),
        ];
        for migration in waiting {
            assert!(migration.contains(&format!("WHERE {}", waiting_notices!())));
        }
        let claims = [
            crate::queue::sqlite::claim_statement(Lane::Notices),
            crate::queue::postgres::claim_statement(Lane::Notices),
        ];
        for claim in claims {
            // The first waiting tenant, the next one, a destination's due
            // rows; then the abandoned ones from `notices_due`.
            assert_eq!(claim.matches(waiting_notices!()).count(), 3, "{claim}");
            let abandoned = format!("status = 'sending' AND {} ", Lane::Notices.rows());
            assert_eq!(claim.matches(&abandoned).count(), 1, "{claim}");
            assert!(claim.contains(notice_transports!()), "{claim}");
        }
    }
}
