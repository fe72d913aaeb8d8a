package policies

// CrashForTest makes the intake end as a crashed process would, once its
// context is cancelled: what it applied and had not acknowledged yet stays
// unacknowledged, for the broker to send again.
func (in *Intake) CrashForTest() { in.crashed.Store(true) }
