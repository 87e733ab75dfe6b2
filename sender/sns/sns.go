// Package sns sends codes by SMS through Amazon SNS (the Publish action
// with a PhoneNumber), using the AWS SDK for Go v2: requests are signed
// by the SDK, credentials come from the configuration or the SDK's
// default chain.
//
// SNS sends SMS through AWS End User Messaging SMS (formerly Amazon
// Pinpoint SMS): sender IDs, origination numbers, India's DLT
// registrations, spending limits and opt-out lists live there. SNS gives
// no per-message delivery receipt: delivery status goes to CloudWatch
// Logs (when delivery status logging is on), up to 72 hours late, so the
// sender takes none (it is not a sender.Receipter). Its message id
// (SendWithID) is what those logs name.
package sns

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssns "github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/smithy-go"

	"github.com/caddy-stepup/caddy-stepup/sender"
	"github.com/caddy-stepup/caddy-stepup/sender/internal/httpsend"
)

// The SMS attributes of a Publish.
const (
	attrSMSType     = "AWS.SNS.SMS.SMSType"
	attrSenderID    = "AWS.SNS.SMS.SenderID"
	attrMaxPrice    = "AWS.SNS.SMS.MaxPrice"
	attrEntityID    = "AWS.MM.SMS.EntityId"
	attrTemplateID  = "AWS.MM.SMS.TemplateId"
	attrOrigination = "AWS.MM.SMS.OriginationNumber"
)

// Config configures a Sender. Its JSON is the sns sender's in a Caddy
// config; see sender.Options for the fields every sender has, and for
// the placeholder tags. Options.MaxAttempts bounds the SDK's attempts of
// one Publish (default the SDK's, 3); Options.Client replaces the SDK's
// HTTP client.
type Config struct {
	// Region is the AWS region that sends ("ap-south-1"). Empty: the
	// region of the SDK's shared configuration or AWS_REGION.
	Region string `json:"region,omitempty" placeholder:"optional"`
	// Endpoint replaces the regional SNS endpoint (a VPC endpoint, a test
	// server).
	Endpoint string `json:"endpoint,omitempty" placeholder:"optional"`
	// AccessKeyID is a static access key. Without it, the SDK's default
	// chain is used: environment, shared files, web identity, ECS or EC2
	// instance role. A placeholder written here must resolve: static
	// keys that come out empty never fall back to the default chain.
	AccessKeyID string `json:"access_key_id,omitempty" placeholder:"required"`
	// SecretAccessKey is the static access key's secret.
	SecretAccessKey string `json:"secret_access_key,omitempty" placeholder:"optional"`
	// SessionToken goes with temporary static credentials.
	SessionToken string `json:"session_token,omitempty" placeholder:"optional"`
	// SenderID is the alphanumeric sender ID, where the destination
	// country supports one (for India, the DLT-registered header).
	SenderID string `json:"sender_id,omitempty" placeholder:"optional"`
	// OriginationNumber is the number or short code to send from, when
	// the account has several.
	OriginationNumber string `json:"origination_number,omitempty" placeholder:"optional"`
	// MaxPrice caps the price of one SMS in USD ("0.50"): SNS refuses to
	// send a message that would cost more, which limits toll fraud. It
	// goes as a Number attribute, as SNS documents it.
	MaxPrice string `json:"max_price,omitempty" placeholder:"optional"`
	// EntityID is India's DLT principal entity ID.
	EntityID string `json:"entity_id,omitempty" placeholder:"optional"`
	// TemplateID is India's DLT template ID; set it with EntityID.
	TemplateID string `json:"template_id,omitempty" placeholder:"optional"`
	sender.Options
}

// Validate checks the configuration as written, placeholders
// unresolved: static credentials whole or absent, a region with them,
// both DLT identifiers or neither.
func (c *Config) Validate() error {
	if err := c.Options.Validate("sns"); err != nil {
		return err
	}
	switch {
	case (c.AccessKeyID == "") != (c.SecretAccessKey == ""):
		return errors.New("sns sender: set both access_key_id and secret_access_key, or neither to use the AWS default credential chain")
	case c.SessionToken != "" && c.AccessKeyID == "":
		return errors.New("sns sender: session_token needs access_key_id and secret_access_key")
	case c.AccessKeyID != "" && c.Region == "":
		return errors.New("sns sender: region is required with static credentials")
	case (c.EntityID == "") != (c.TemplateID == ""):
		return errors.New("sns sender: India DLT needs both entity_id and template_id")
	}
	return nil
}

// Sender sends codes through Amazon SNS. It is safe for concurrent use.
//
// Every message is Transactional (AWS.SNS.SMS.SMSType), which SNS routes
// for reliability rather than cost. The SDK retries throttling (SNS's own
// Throttled too, which the SDK does not know by default) and 5xx answers
// with backoff and jitter, within the context's deadline; throttling
// that outlasts the attempts is temporary. Refused credentials and
// permissions are sender.Error.Config.
type Sender struct {
	httpsend.Base
	client   *awssns.Client
	attrs    map[string]types.MessageAttributeValue
	template bool // India DLT identifiers set
}

var (
	_ httpsend.Provider    = (*Sender)(nil)
	_ sender.IDSender      = (*Sender)(nil)
	_ sender.TemplateBound = (*Sender)(nil)
)

// codeThrottled is the error code of SNS's ThrottledException, which the
// SDK's default retryer does not count as throttling.
const codeThrottled = "Throttled"

// retryThrottled makes the client's retryer retry codeThrottled.
func retryThrottled(o *awssns.Options) {
	r := o.Retryer
	if r == nil {
		r = retry.NewStandard()
	}
	o.Retryer = retry.AddWithErrorCodes(r, codeThrottled)
}

// sharedHTTPClient is the SDK's buildable client, shared by every SNS
// sender of the process.
var sharedHTTPClient = awshttp.NewBuildableClient()

// New returns a Sender for cfg. Without static credentials it loads the
// SDK's default configuration, which reads the shared files and the
// environment but contacts no service: credentials are fetched at the
// first Send. Errors never contain a credential.
func New(ctx context.Context, cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	// One SDK client (and so one transport) for the process: the SDK's
	// default builds one per sender, whose idle connections would
	// outlive config reloads.
	var httpClient awssns.HTTPClient = sharedHTTPClient
	if cfg.Client != nil {
		httpClient = cfg.Client
	}
	if cfg.MaxPrice != "" {
		if p, err := strconv.ParseFloat(cfg.MaxPrice, 64); err != nil || p <= 0 {
			return nil, errors.New(`sns sender: max_price must be a positive amount in USD, such as "0.50"`)
		}
	}
	endpoint := ""
	if cfg.Endpoint != "" {
		var err error
		if endpoint, err = httpsend.Endpoint(cfg.Endpoint, ""); err != nil {
			return nil, errors.New("sns sender: " + err.Error())
		}
	}
	s := &Sender{
		Base:     httpsend.NewBase(cfg.Options, "sns", httpsend.Retrier{}),
		attrs:    map[string]types.MessageAttributeValue{attrSMSType: str("Transactional")},
		template: cfg.EntityID != "",
	}
	for name, v := range map[string]string{
		attrSenderID:    cfg.SenderID,
		attrOrigination: cfg.OriginationNumber,
		attrEntityID:    cfg.EntityID,
		attrTemplateID:  cfg.TemplateID,
	} {
		if v != "" {
			s.attrs[name] = str(v)
		}
	}
	if cfg.MaxPrice != "" {
		s.attrs[attrMaxPrice] = types.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(cfg.MaxPrice)}
	}

	if cfg.AccessKeyID != "" {
		opts := awssns.Options{
			Region:           cfg.Region,
			Credentials:      credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
			RetryMaxAttempts: cfg.MaxAttempts,
			HTTPClient:       httpClient,
		}
		if endpoint != "" {
			opts.BaseEndpoint = aws.String(endpoint)
		}
		s.client = awssns.New(opts, retryThrottled)
		return s, nil
	}

	load := []func(*config.LoadOptions) error{config.WithHTTPClient(httpClient)}
	if cfg.Region != "" {
		load = append(load, config.WithRegion(cfg.Region))
	}
	if cfg.MaxAttempts > 0 {
		load = append(load, config.WithRetryMaxAttempts(cfg.MaxAttempts))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, errors.New("sns sender: loading the AWS configuration: " + httpsend.Redact(err.Error()))
	}
	if awsCfg.Region == "" {
		return nil, errors.New("sns sender: no region: set region, or AWS_REGION")
	}
	s.client = awssns.NewFromConfig(awsCfg, func(o *awssns.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	}, retryThrottled)
	return s, nil
}

func str(v string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
}

// Channel returns sender.SMS.
func (*Sender) Channel() sender.Channel { return sender.SMS }

// TemplateBound reports whether the sender carries India's DLT
// identifiers: its texts must then match the registered template.
func (s *Sender) TemplateBound() bool { return s.template }

// Send publishes msg to its phone number. The error is a *sender.Error;
// it never holds the code, the number or the service's message as such.
func (s *Sender) Send(ctx context.Context, msg *sender.Message) error {
	_, err := s.SendWithID(ctx, msg)
	return err
}

// SendWithID is Send, returning SNS's MessageId (what delivery status
// logs in CloudWatch name; SNS sends no receipt).
func (s *Sender) SendWithID(ctx context.Context, msg *sender.Message) (string, error) {
	if msg == nil {
		return "", &sender.Error{Sender: s.Name(), Msg: "no message"}
	}
	if _, ok := httpsend.E164Digits(msg.To); !ok {
		return "", httpsend.NotE164(s.Name())
	}
	ctx, cancel := context.WithTimeout(ctx, s.Timeout())
	defer cancel()
	out, err := s.client.Publish(ctx, &awssns.PublishInput{
		PhoneNumber:       aws.String(msg.To),
		Message:           aws.String(msg.Text),
		MessageAttributes: s.attrs,
	})
	if err != nil {
		return "", classify(s.Name(), err)
	}
	return aws.ToString(out.MessageId), nil
}

// Error codes worth trying again later, or through another sender.
var temporaryCodes = map[string]bool{
	codeThrottled:         true,
	"Throttling":          true,
	"ThrottlingException": true,
	"ThrottledException":  true,
	"KMSThrottling":       true,
	"InternalError":       true,
	"InternalFailure":     true,
	"ServiceUnavailable":  true,
	"RequestTimeout":      true,
}

// classify turns an error of Publish into a *sender.Error.
func classify(name string, err error) *sender.Error {
	se := &sender.Error{Sender: name}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		se.Status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		// No answer from the service: a network error, a timeout, no
		// credentials.
		se.Temporary = true
		se.Msg = "publish failed"
		switch {
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
			se.Msg = "timed out"
		case strings.Contains(err.Error(), "credential"):
			se.Temporary = false
			se.Config = true
			se.Msg = "no AWS credentials"
		}
		se.Msg = httpsend.WithText(se.Msg, lastPart(err.Error()))
		return se
	}
	se.Code = ae.ErrorCode()
	se.Msg = httpsend.WithText("SNS refused the message", ae.ErrorMessage())
	switch {
	case temporaryCodes[se.Code], ae.ErrorFault() == smithy.FaultServer, se.Status == 429, se.Status >= 500:
		se.Temporary = true
		se.Msg = httpsend.WithText("SNS did not take the message", ae.ErrorMessage())
	case strings.HasPrefix(se.Code, "InvalidParameter") && strings.Contains(ae.ErrorMessage(), "PhoneNumber"),
		se.Code == "OptedOut":
		se.Recipient = true
	case configCodes[se.Code]:
		se.Config = true
	}
	return se
}

// Error codes an operator must fix: credentials, permissions, a KMS key.
var configCodes = map[string]bool{
	"AuthorizationError":          true,
	"InvalidClientTokenId":        true,
	"SignatureDoesNotMatch":       true,
	"AccessDenied":                true,
	"AccessDeniedException":       true,
	"ExpiredToken":                true,
	"KMSAccessDenied":             true,
	"KMSDisabled":                 true,
	"KMSNotFound":                 true,
	"InvalidSecurity":             true,
	"UnrecognizedClientException": true,
}

// lastPart returns what follows the SDK's "operation error ...:" prefixes.
func lastPart(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}
