//! Accounts, organisation and access for the tpsync server.
