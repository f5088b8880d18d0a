package kms

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
)

// AWSOptions configures NewAWS. Apart from the default credential chain
// (when CredentialsFile is empty), nothing is read from the environment or
// from ~/.aws: the region comes from the key's ARN and the endpoint from
// Endpoint, so AWS_REGION, AWS_ENDPOINT_URL_KMS and the like do not apply.
type AWSOptions struct {
	// KeyURI names the key as "aws-kms://" followed by the ARN of the key
	// or of an alias, e.g.
	// "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	// or "aws-kms://arn:aws:kms:eu-west-1:111122223333:alias/bulwark". It
	// must be a symmetric encryption key (key spec SYMMETRIC_DEFAULT). The
	// region is the ARN's.
	KeyURI string
	// CredentialsFile is an AWS shared credentials file whose [default]
	// profile holds aws_access_key_id, aws_secret_access_key and, for
	// temporary credentials, aws_session_token. Empty means the AWS SDK's
	// default chain: AWS_* environment variables, the shared files of
	// ~/.aws, SSO, web identity, the container or EC2 instance role.
	// The credentials need kms:Encrypt and kms:Decrypt on the key.
	CredentialsFile string
	// Endpoint overrides the KMS endpoint, e.g. a VPC endpoint or an
	// emulator, as scheme://host[:port]. Plain http is accepted only for a
	// loopback address. Empty means the region's public endpoint.
	Endpoint string
	// HTTPClient makes the requests to KMS (and, for the default chain,
	// to the credential services); nil means the AWS SDK's default client.
	HTTPClient *http.Client
}

// AWS is a key-encryption key held in AWS Key Management Service: the key
// never leaves KMS, which encrypts and decrypts for us. It is safe for
// concurrent use.
type AWS struct {
	id      string // the key URI
	keyID   string // the ARN, as KMS takes it
	timeout time.Duration
	client  *awskms.Client
}

// awsKeyARNPattern accepts the ARN of a KMS key (a UUID, or "mrk-" and 32
// hex digits for a multi-Region key) or of an alias, in any partition.
var awsKeyARNPattern = regexp.MustCompile(`^arn:(aws(?:-[a-z]+)*):kms:([a-z]{2}(?:-[a-z]+)+-[0-9]+):([0-9]{12}):` +
	`(key/(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|mrk-[0-9a-fA-F]{32})|alias/[A-Za-z0-9/_-]{1,250})$`)

// awsContextKey is the encryption context key that carries the associated
// data, base64 encoded (KMS takes only strings).
const awsContextKey = "bulwark_ad"

// Size limits of KMS's Encrypt and Decrypt.
const (
	awsMaxPlaintext  = 4096
	awsMaxCiphertext = 6144
)

// NewAWS checks opts, finds the credentials, then makes one round trip to
// KMS to prove that they may use the key and that KMS binds the encryption
// context. Returns an error wrapping ErrUnavailable if KMS cannot be
// reached, ErrPermission if it refuses the credentials, and a plain error
// for anything wrong in opts or with the key (missing, disabled, not a
// symmetric encryption key). No error holds a credential.
func NewAWS(ctx context.Context, opts AWSOptions) (*AWS, error) {
	arn, region, err := awsKeyARN(opts.KeyURI)
	if err != nil {
		return nil, err
	}
	endpoint, err := awsEndpoint(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	timeout := DefaultTimeout
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	creds, err := awsCredentials(cctx, opts, region)
	if err != nil {
		return nil, err
	}

	o := awskms.Options{
		Region:      region,
		Credentials: creds,
		// One attempt per call: the caller decides whether and when to
		// retry, within its own deadline.
		Retryer: aws.NopRetryer{},
		Logger:  logging.Nop{},
	}
	if endpoint != "" {
		o.BaseEndpoint = aws.String(endpoint)
	}
	if opts.HTTPClient != nil {
		o.HTTPClient = opts.HTTPClient
	}
	a := &AWS{
		id:      "aws-kms://" + arn,
		keyID:   arn,
		timeout: timeout,
		client:  awskms.New(o),
	}
	if err := a.probe(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// awsKeyARN checks a key URI and returns its ARN and region.
func awsKeyARN(uri string) (arn, region string, err error) {
	const form = "aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID or aws-kms://arn:aws:kms:REGION:ACCOUNT:alias/NAME"
	switch {
	case uri == "":
		return "", "", fmt.Errorf("aws-kms: key URI is empty; want %s", form)
	case strings.HasPrefix(uri, "arn:"):
		return "", "", fmt.Errorf("aws-kms: key URI %q lacks the aws-kms:// prefix; want %s", uri, form)
	case !strings.HasPrefix(uri, "aws-kms://"):
		return "", "", fmt.Errorf("aws-kms: key URI %q is not of the form %s", uri, form)
	}
	arn = strings.TrimPrefix(uri, "aws-kms://")
	m := awsKeyARNPattern.FindStringSubmatch(arn)
	if m == nil {
		return "", "", fmt.Errorf("aws-kms: key URI %q is not of the form %s", uri, form)
	}
	return arn, m[2], nil
}

// awsEndpoint checks an endpoint override; "" stays "".
func awsEndpoint(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("aws-kms: endpoint: %w", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "http":
		return "", fmt.Errorf("aws-kms: endpoint %q must start with https:// (or http:// on loopback)", s)
	case u.Host == "" || u.Hostname() == "":
		return "", fmt.Errorf("aws-kms: endpoint %q has no host", s)
	case u.User != nil:
		return "", errors.New("aws-kms: endpoint must not contain user information")
	case u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") != "":
		return "", fmt.Errorf("aws-kms: endpoint %q must be scheme://host[:port] only", s)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		// The keys we wrap would cross the network in clear.
		return "", fmt.Errorf("aws-kms: endpoint %q is plain http to a host that is not loopback: the keys would cross the network in clear; use https", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("aws-kms: endpoint %q has a bad port", s)
		}
	}
	return u.Scheme + "://" + u.Host, nil
}

// awsCredentials returns the credentials of opts: the [default] profile of
// CredentialsFile, or the SDK's default chain. It retrieves them once, so
// that missing credentials are reported as such and not as a failed call.
func awsCredentials(ctx context.Context, opts AWSOptions, region string) (aws.CredentialsProvider, error) {
	var creds aws.CredentialsProvider
	if file := opts.CredentialsFile; file != "" {
		// The SDK skips a file it cannot read; we say so instead.
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("aws-kms: credentials file: %w", err)
		}
		f.Close()
		sc, err := awsconfig.LoadSharedConfigProfile(ctx, "default", func(o *awsconfig.LoadSharedConfigOptions) {
			o.CredentialsFiles = []string{file}
			o.ConfigFiles = []string{} // not ~/.aws/config
		})
		var notExist awsconfig.SharedConfigProfileNotExistError
		switch {
		case errors.As(err, &notExist) && notExist.Profile == "default":
			return nil, fmt.Errorf("aws-kms: credentials file %s has no [default] profile", file)
		case err != nil:
			return nil, fmt.Errorf("aws-kms: credentials file %s: %s", file, oneLine(err))
		case sc.Credentials.AccessKeyID == "" || sc.Credentials.SecretAccessKey == "":
			return nil, fmt.Errorf("aws-kms: credentials file %s: the [default] profile has no aws_access_key_id and aws_secret_access_key "+
				"(for roles, SSO or a credential process, leave the credentials file unset and use the AWS default chain)", file)
		}
		creds = credentials.NewStaticCredentialsProvider(sc.Credentials.AccessKeyID, sc.Credentials.SecretAccessKey, sc.Credentials.SessionToken)
	} else {
		// The SDK's own logger writes warnings to stderr; errors reach the
		// caller anyway.
		load := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region), awsconfig.WithLogger(logging.Nop{})}
		if opts.HTTPClient != nil {
			load = append(load, awsconfig.WithHTTPClient(opts.HTTPClient))
		}
		cfg, err := awsconfig.LoadDefaultConfig(ctx, load...)
		if err != nil {
			return nil, fmt.Errorf("aws-kms: AWS default configuration: %s", oneLine(err))
		}
		creds = cfg.Credentials
	}
	if _, err := creds.Retrieve(ctx); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil && errors.Is(ctxErr, context.Canceled) {
			return nil, fmt.Errorf("aws-kms: credentials: %w", ctxErr)
		}
		source := "the AWS default chain (environment, ~/.aws, SSO, web identity, container or instance role)"
		if opts.CredentialsFile != "" {
			source = opts.CredentialsFile
		}
		return nil, fmt.Errorf("aws-kms: no usable AWS credentials from %s: %s", source, oneLine(err))
	}
	return creds, nil
}

// oneLine is the text of an AWS SDK configuration error, some of which
// span lines, on one line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// ID returns the key URI, "aws-kms://" and the ARN it was given (of the
// key or of the alias). It holds no secret.
func (a *AWS) ID() string { return a.id }

// Encrypt has KMS encrypt plaintext (1 to 4096 bytes) under the key, with
// associatedData as the encryption context {"bulwark_ad": base64 of it};
// empty associatedData gives no encryption context, so it decrypts only
// with empty associatedData again. The ciphertext is KMS's blob, which
// names the key. Returns an error wrapping ErrUnavailable if KMS cannot be
// used now, or ErrPermission if it refuses the credentials.
func (a *AWS) Encrypt(ctx context.Context, plaintext, associatedData []byte) ([]byte, error) {
	switch {
	case len(plaintext) == 0:
		return nil, errors.New("aws-kms: encrypt: plaintext is empty")
	case len(plaintext) > awsMaxPlaintext:
		return nil, fmt.Errorf("aws-kms: encrypt: plaintext of %d bytes is over KMS's limit of %d", len(plaintext), awsMaxPlaintext)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	out, err := a.client.Encrypt(ctx, &awskms.EncryptInput{
		KeyId:               aws.String(a.keyID),
		Plaintext:           plaintext,
		EncryptionContext:   awsEncryptionContext(associatedData),
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	})
	if err != nil {
		return nil, awsCallError(ctx, "aws-kms: encrypt", false, err)
	}
	if len(out.CiphertextBlob) == 0 {
		return nil, errors.New("aws-kms: encrypt: KMS returned no ciphertext")
	}
	return out.CiphertextBlob, nil
}

// Decrypt has KMS decrypt ciphertext, which must have been made by Encrypt
// under this very key (KMS is told the key, so a ciphertext of another key
// is refused) with the same associatedData. Returns an error wrapping
// ErrDecrypt if KMS refuses the ciphertext or the associated data,
// ErrUnavailable if KMS cannot be used now, or ErrPermission if it refuses
// the credentials.
func (a *AWS) Decrypt(ctx context.Context, ciphertext, associatedData []byte) ([]byte, error) {
	if len(ciphertext) == 0 || len(ciphertext) > awsMaxCiphertext {
		return nil, fmt.Errorf("aws-kms: decrypt: %d bytes cannot be a KMS ciphertext: %w", len(ciphertext), ErrDecrypt)
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	out, err := a.client.Decrypt(ctx, &awskms.DecryptInput{
		KeyId:               aws.String(a.keyID),
		CiphertextBlob:      ciphertext,
		EncryptionContext:   awsEncryptionContext(associatedData),
		EncryptionAlgorithm: types.EncryptionAlgorithmSpecSymmetricDefault,
	})
	if err != nil {
		return nil, awsCallError(ctx, "aws-kms: decrypt", true, err)
	}
	if len(out.Plaintext) == 0 {
		return nil, errors.New("aws-kms: decrypt: KMS returned no plaintext")
	}
	return out.Plaintext, nil
}

// awsEncryptionContext carries associated data to KMS, which authenticates
// it with the ciphertext. The context is not secret: CloudTrail logs it.
func awsEncryptionContext(associatedData []byte) map[string]string {
	if len(associatedData) == 0 {
		return nil
	}
	return map[string]string{awsContextKey: base64.StdEncoding.EncodeToString(associatedData)}
}

// AWS error codes by what they mean to the caller. Codes not listed are
// classified by HTTP status (5xx and 429 unavailable, 401 and 403
// permission) or reported as they are.
var (
	awsDecryptCodes = map[string]bool{
		"InvalidCiphertextException": true, // damaged, or another encryption context
		"IncorrectKeyException":      true, // made under another key
	}
	awsPermissionCodes = map[string]bool{
		"AccessDeniedException":       true,
		"UnrecognizedClientException": true, // unknown access key
		"InvalidClientTokenId":        true,
		"InvalidSignatureException":   true, // wrong secret key
		"SignatureDoesNotMatch":       true,
		"IncompleteSignature":         true,
		"MissingAuthenticationToken":  true,
		"ExpiredTokenException":       true,
		"ExpiredToken":                true,
		"NotAuthorized":               true,
	}
	awsUnavailableCodes = map[string]bool{
		"ThrottlingException":              true,
		"Throttling":                       true,
		"TooManyRequestsException":         true,
		"RequestLimitExceeded":             true,
		"KMSInternalException":             true,
		"InternalFailure":                  true,
		"ServiceUnavailable":               true,
		"ServiceUnavailableException":      true,
		"DependencyTimeoutException":       true,
		"KeyUnavailableException":          true,
		"RequestTimeout":                   true,
		"RequestTimeoutException":          true,
		"XksProxyUriUnreachableException":  true,
		"XksProxyInvalidResponseException": true,
	}
	awsKeyStateHints = map[string]string{
		"NotFoundException":             "the key does not exist (in this account and region)",
		"DisabledException":             "the key is disabled",
		"KMSInvalidStateException":      "the key cannot be used in its state (pending deletion or import?)",
		"InvalidKeyUsageException":      "the key is not a symmetric encryption key (key spec SYMMETRIC_DEFAULT, usage ENCRYPT_DECRYPT)",
		"UnsupportedOperationException": "the key is not a symmetric encryption key (key spec SYMMETRIC_DEFAULT, usage ENCRYPT_DECRYPT)",
		"InvalidArnException":           "KMS does not accept the key ARN",
	}
)

// awsCallError classifies an error of one encrypt or decrypt call; ctx is
// the call's context. decrypting says whether it was a Decrypt, where a
// refused ciphertext means that it does not authenticate.
func awsCallError(ctx context.Context, op string, decrypting bool, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case decrypting && awsDecryptCodes[code]:
			return fmt.Errorf("%s: %w: %w", op, err, ErrDecrypt)
		case awsPermissionCodes[code]:
			return fmt.Errorf("%s: %w: %w", op, err, ErrPermission)
		case awsUnavailableCodes[code]:
			return fmt.Errorf("%s: %w: %w", op, err, ErrUnavailable)
		case awsKeyStateHints[code] != "":
			return fmt.Errorf("%s: %s: %w", op, awsKeyStateHints[code], err)
		}
	}
	var resp interface{ HTTPStatusCode() int }
	if errors.As(err, &resp) && resp.HTTPStatusCode() != 0 {
		return statusError(op, resp.HTTPStatusCode(), false, err)
	}
	return transportError(ctx, op, err)
}

// probe checks the key at start (see probe).
func (a *AWS) probe(ctx context.Context) error {
	return probe(ctx, a, "aws-kms", "ignores the encryption context")
}
