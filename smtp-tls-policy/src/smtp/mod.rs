//! Thin helpers over [`smtp_proto`]: bounded reply framing, reply and EHLO parsing (client path)
//! and command parsing (listener path).
//!
//! Framing (finding line ends, counting lines, enforcing limits) is done here so that every limit
//! has its own error; the content of each complete reply or command line is parsed by smtp-proto.

mod command;
mod reply;
pub(crate) mod syntax;

pub use command::{CommandKind, ParsedCommand, parse_command};
pub use reply::{
    EhloCapabilities, MAX_LINE_LEN, MAX_REPLY_LINES, Reply, ReplyAccumulator, parse_reply,
};
