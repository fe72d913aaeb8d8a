package policies

// Pipeline is the in-process path of a metric: decode, add to the windows,
// evaluate the policies of the message's deployment, hand decisions on. It
// is owned by one goroutine (the runner's); it takes no locks.
type Pipeline struct {
	Windows *Windows
	// OnDecision receives every decision, fired or held back.
	OnDecision func(deployment string, d Decision)
	// Malformed counts refused messages by kind.
	Malformed map[string]int
	// Evaluations counts policy evaluations.
	Evaluations int64

	instances map[string][]*Instance // by deployment
	shared    map[string]*float64    // scale.clj's shared cooldown flag, by deployment
	last      *Metric                // the metric being applied: the triggering event
}

// NewPipeline returns a pipeline keeping horizon seconds of history.
func NewPipeline(horizon float64) *Pipeline {
	return &Pipeline{Windows: NewWindows(horizon), Malformed: map[string]int{}, instances: map[string][]*Instance{}}
}

// Add registers a policy instance of a deployment.
func (p *Pipeline) Add(deployment string, in *Instance) {
	if in.Shared {
		if p.shared == nil {
			p.shared = map[string]*float64{}
		}
		if p.shared[deployment] == nil {
			p.shared[deployment] = new(float64)
		}
		in.shared = p.shared[deployment]
	}
	p.instances[deployment] = append(p.instances[deployment], in)
}

// Ingest handles one message body. A malformed message is counted and its
// error returned; nothing else happens with it.
func (p *Pipeline) Ingest(body []byte, routingKey string) error {
	m, err := Decode(body, routingKey)
	if err != nil {
		if kind, ok := IsMalformed(err); ok {
			p.Malformed[kind]++
		}
		return err
	}
	return p.Apply(&m)
}

// Apply adds a decoded metric and evaluates its deployment's policies.
func (p *Pipeline) Apply(m *Metric) error {
	p.last = m
	p.Windows.Add(m)
	for _, in := range p.instances[m.DeploymentID] {
		p.Evaluations++
		ds, err := in.Step(p.Windows, m.Time)
		if err != nil {
			return err
		}
		if p.OnDecision != nil {
			for _, d := range ds {
				p.OnDecision(m.DeploymentID, d)
			}
		}
	}
	return nil
}
