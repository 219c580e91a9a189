//! Who is signed in, as both builds see it.

use serde::{Deserialize, Serialize};

/// What a user may do (PRODUCT.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Superuser,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Superuser => "superuser",
            Role::Member => "member",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "superuser" => Some(Role::Superuser),
            "member" => Some(Role::Member),
            _ => None,
        }
    }

    /// Where this role lands after signing in, and from `/`.
    pub fn home(self) -> &'static str {
        crate::paths::home_for(self == Role::Superuser)
    }
}

/// The signed-in user as the rest of the app sees it: the actor of audit rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthUser {
    pub id: i64,
    pub email: String,
    pub role: Role,
}

impl AuthUser {
    pub fn is_superuser(&self) -> bool {
        self.role == Role::Superuser
    }
}

/// Where first-run setup stands, as the setup and sign-in pages show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetupStatus {
    /// No superuser exists and the address's token is the one the server printed.
    Open,
    /// No superuser exists, but the address carries no token or another one.
    WrongToken,
    /// A superuser exists: setup is over, sign in instead.
    Done,
}
