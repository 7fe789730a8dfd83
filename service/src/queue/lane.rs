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

use crate::{feedback, webhooks};

/// The SQL condition of a notice's row (the `notices_due` index's).
macro_rules! notice_rows {
    () => {
        "transport IN ('webhook', 'keycloak')"
    };
}

/// The SQL condition of a message's row (the `messages_due` index's).
macro_rules! message_rows {
    () => {
        "transport NOT IN ('webhook', 'keycloak')"
    };
}

/// A store's claim statement of each lane, from its `claim!` macro (which
/// takes a lane's row condition), and `claim_statement` choosing one.
macro_rules! lane_claims {
    ($claim:ident) => {
        /// The claim of the messages' lane.
        #[doc(hidden)]
        pub const CLAIM_MESSAGES: &str = $claim!($crate::queue::lane::message_rows!());
        /// The claim of the notices' lane.
        #[doc(hidden)]
        pub const CLAIM_NOTICES: &str = $claim!($crate::queue::lane::notice_rows!());

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

pub(crate) use {lane_claims, message_rows, notice_rows};

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
            let claims = [
                crate::queue::sqlite::claim_statement(lane),
                crate::queue::postgres::claim_statement(lane),
            ];
            for claim in claims {
                // Each kind of due row: queued, retrying, abandoned.
                assert_eq!(claim.matches(&format!("AND {} ", lane.rows())).count(), 3);
            }
        }
    }
}
