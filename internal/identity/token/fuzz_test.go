package token

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"bulwark/internal/apperr"
)

// The fuzz targets use one fixed key and clock, so that fuzzValidToken
// verifies in every worker process: it is the one token that may.
var (
	fuzzKey         = bytes.Repeat([]byte{0x5a}, 64)
	fuzzNow         = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	fuzzValidClaims = `{"iss":"https://bulwark.test","sub":"user-1","aud":"bulwark-api","exp":1893553745,"nbf":1893553445,"iat":1893553445,"jti":"AAAAAAAAAAAAAAAAAAAAAA","sid":"session-1","amr":["pwd"]}`
	fuzzValidToken  = forge(hs512Header("fuzz-kid"), fuzzValidClaims, sha512.New, fuzzKey)
)

var reasons = []string{ReasonTooLarge, ReasonMalformed, ReasonAlg, ReasonKid, ReasonSignature, ReasonClaims,
	ReasonIssuer, ReasonAudience, ReasonExpired, ReasonNotYetValid, ReasonIssuedInFuture}

func fuzzIssuer(t testing.TB) *Issuer {
	k := &memKeys{current: "fuzz-kid", keys: map[string][]byte{"fuzz-kid": fuzzKey}}
	is, err := NewIssuer(k, Options{Issuer: testIssuer, Audience: testAudience, Now: func() time.Time { return fuzzNow }})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// FuzzVerify: no token but fuzzValidToken verifies, nothing panics, and
// every refusal is unauthorized with a known reason.
func FuzzVerify(f *testing.F) {
	is := fuzzIssuer(f)
	if _, err := is.Verify(context.Background(), fuzzValidToken); err != nil {
		f.Fatalf("the valid seed does not verify: %v", err)
	}
	parts := strings.Split(fuzzValidToken, ".")
	for _, s := range []string{
		fuzzValidToken,
		parts[0] + "." + parts[1] + ".",
		parts[0] + "." + parts[1],
		fuzzValidToken + "." + parts[2],
		forge(`{"alg":"none","typ":"JWT","kid":"fuzz-kid"}`, fuzzValidClaims, nil, nil),
		forge(`{"alg":"HS256","typ":"JWT","kid":"fuzz-kid"}`, fuzzValidClaims, sha256.New, fuzzKey),
		forge(`{"alg":"HS512","typ":"JWT","kid":"other"}`, fuzzValidClaims, sha512.New, fuzzKey),
		forge(`{"alg":"HS512","alg":"HS512","typ":"JWT","kid":"fuzz-kid"}`, fuzzValidClaims, sha512.New, fuzzKey),
		forge(`{"alg":"HS512","typ":"JWT","kid":"fuzz\u002dkid"}`, fuzzValidClaims, sha512.New, fuzzKey[1:]),
		"", ".", "..", "...", "eyJ", strings.Repeat("A", MaxTokenSize+1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := is.Verify(context.Background(), tok)
		if err == nil {
			if tok != fuzzValidToken {
				t.Fatalf("verified a token never signed: %q", tok)
			}
			return
		}
		if !reflect.DeepEqual(c, Claims{}) {
			t.Fatalf("claims returned with a refusal: %+v", c)
		}
		var inv *Invalid
		if !errors.As(err, &inv) || !slices.Contains(reasons, inv.Reason) {
			t.Fatalf("refusal %v is not an *Invalid with a known reason", err)
		}
		if apperr.CodeOf(err) != apperr.Unauthorized || apperr.MessageOf(err) != invalidMessage {
			t.Fatalf("refusal %v: code %s, message %q", err, apperr.CodeOf(err), apperr.MessageOf(err))
		}
	})
}

// FuzzClaims fuzzes the claims parser, which Verify reaches only for
// tokens of our keys: claims it accepts are valid JSON and read as
// encoding/json reads them, and a token of them verifies with the same
// claims, or is refused for a reason of the claims.
func FuzzClaims(f *testing.F) {
	is := fuzzIssuer(f)
	for _, s := range []string{
		fuzzValidClaims,
		`{"iss":"https://bulwark.test","sub":"\u00e9\ud83d\ude00","aud":["x","bulwark-api"],"exp":1893553745,"nbf":1893553445,"iat":1893553445,"jti":"j","sid":"s","x":{"y":[1,2.5e-3,true,false,null]}}`,
		`{"sub":"a","sub":"b"}`, `{"sub":"\ud800"}`, `{"exp":1.5}`, `{"exp":-0}`, `{"amr":[]}`, `{}`, `[]`, `{"a":[[[[]]]]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		c, reason := parseClaims(payload)
		if reason == "" {
			if !json.Valid([]byte(payload)) {
				t.Fatalf("accepted claims that are not JSON: %q", payload)
			}
			var m map[string]any
			d := json.NewDecoder(strings.NewReader(payload))
			d.UseNumber()
			if err := d.Decode(&m); err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			for name, got := range map[string]string{"iss": c.Issuer, "sub": c.Subject, "sid": c.Session, "jti": c.ID} {
				if v, ok := m[name]; ok && v != got {
					t.Fatalf("%s: read %q, encoding/json reads %q", name, got, v)
				}
			}
			for name, got := range map[string]time.Time{"iat": c.IssuedAt, "nbf": c.NotBefore, "exp": c.Expires} {
				if v, ok := m[name]; ok && v.(json.Number).String() != json.Number(jsonInt(got)).String() {
					t.Fatalf("%s: read %v, encoding/json reads %v", name, got, v)
				}
			}
			if v, ok := m["amr"]; ok && len(v.([]any)) != len(c.AMR) {
				t.Fatalf("amr: read %v, encoding/json reads %v", c.AMR, v)
			}
		} else if !slices.Contains(reasons, reason) {
			t.Fatalf("unknown reason %q", reason)
		}
		if len(payload) > MaxTokenSize {
			return
		}
		tok := forge(hs512Header("fuzz-kid"), payload, sha512.New, fuzzKey)
		got, err := is.Verify(context.Background(), tok)
		var inv *Invalid
		switch {
		case err == nil && (reason != "" || !reflect.DeepEqual(got, c)):
			t.Fatalf("Verify read %+v, parseClaims %+v (%q)", got, c, reason)
		case err != nil && errors.As(err, &inv) && reason != "" && inv.Reason != reason:
			t.Fatalf("Verify refused for %q, parseClaims for %q", inv.Reason, reason)
		case err != nil && !errors.As(err, &inv) && len(tok) <= MaxTokenSize:
			t.Fatalf("Verify: %v", err)
		}
	})
}

func jsonInt(t time.Time) string {
	b, _ := json.Marshal(t.Unix())
	return string(b)
}
