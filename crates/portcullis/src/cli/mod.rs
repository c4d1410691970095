//! The `portcullis` subcommands that administer a server's database, as a library so the
//! binary stays a list of commands and tests can reach the pieces.

pub mod grants;
