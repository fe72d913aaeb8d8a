// Package producer publishes metrics to orch the way Cloudify's Diamond
// handler does: JSON messages on the topic exchange cloudify-monitoring,
// routing key = deployment id, with publisher confirms. Services import it
// to report their own metrics; it depends on nothing of orch's.
package producer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Exchange is the default topic exchange.
const Exchange = "cloudify-monitoring"

// Metric is one metric message, in the Diamond handler's format.
type Metric struct {
	NodeID       string  `json:"node_id"`
	NodeName     string  `json:"node_name"`
	DeploymentID string  `json:"deployment_id"`
	Name         string  `json:"name"`
	Path         string  `json:"path"`
	Value        float64 `json:"metric"`
	Unit         string  `json:"unit"`
	Type         string  `json:"type"`
	Host         string  `json:"host"`
	Service      string  `json:"service"`
	Time         float64 `json:"time"`
	TTL          float64 `json:"ttl,omitempty"`
}

// Key is the metric's name within its host: name.path.
func (m *Metric) Key() string {
	if m.Path == "" {
		return m.Name
	}
	if m.Name == "" {
		return m.Path
	}
	return m.Name + "." + m.Path
}

// Complete fills what a producer may leave out: the time (now), the type
// (GAUGE) and the service (<deployment>.<node_name>.<node_id>.<name>.<path>).
func (m *Metric) Complete() {
	if m.Time == 0 {
		m.Time = float64(time.Now().Unix())
	}
	if m.Type == "" {
		m.Type = "GAUGE"
	}
	if m.Service == "" {
		m.Service = fmt.Sprintf("%s.%s.%s.%s.%s", m.DeploymentID, m.NodeName, m.NodeID, m.Name, m.Path)
	}
}

// Publisher publishes metrics over one connection with publisher confirms.
type Publisher struct {
	exchange string
	conn     *amqp.Connection
	mu       sync.Mutex
	ch       *amqp.Channel
	confirms chan amqp.Confirmation
}

// Dial connects to the broker and declares the exchange ("" = Exchange).
func Dial(url, exchange string) (*Publisher, error) {
	if exchange == "" {
		exchange = Exchange
	}
	conn, err := amqp.DialConfig(url, amqp.Config{Heartbeat: 10 * time.Second, Properties: amqp.Table{"connection_name": "orch metrics producer"}})
	if err != nil {
		return nil, fmt.Errorf("dial broker: %w", err)
	}
	ch, err := conn.Channel()
	if err == nil {
		err = ch.ExchangeDeclare(exchange, "topic", true, false, false, false, nil)
	}
	if err == nil {
		err = ch.Confirm(false)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("exchange %s: %w", exchange, err)
	}
	p := &Publisher{exchange: exchange, conn: conn, ch: ch}
	p.confirms = ch.NotifyPublish(make(chan amqp.Confirmation, 1))
	return p, nil
}

// Publish sends one metric and waits for the broker's confirm.
func (p *Publisher) Publish(ctx context.Context, m Metric) error { return p.PublishWith(ctx, m, nil) }

// PublishWith is Publish with message headers.
func (p *Publisher) PublishWith(ctx context.Context, m Metric, headers amqp.Table) error {
	if m.DeploymentID == "" || m.Host == "" || (m.Name == "" && m.Path == "") {
		return errors.New("metric needs deployment_id, host and a name or path")
	}
	m.Complete()
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.ch.PublishWithContext(ctx, p.exchange, m.DeploymentID, false, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Transient, Body: body, Headers: headers,
	}); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	select {
	case c, ok := <-p.confirms:
		if !ok {
			return errors.New("publish: channel closed before the confirm")
		}
		if !c.Ack {
			return errors.New("publish: the broker refused the message")
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the connection.
func (p *Publisher) Close() error { return p.conn.Close() }
