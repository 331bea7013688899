//! Process watch: pidfds that become readable when a process exits.
