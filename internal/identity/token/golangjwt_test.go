package token

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// golang-jwt stands for any standard JWT library: our tokens are standard,
// and standard tokens of our claims verify. It also gives the figure our
// parser is measured against (BenchmarkVerify_GolangJWT).

type libClaims struct {
	jwt.RegisteredClaims
	Sid string   `json:"sid"`
	AMR []string `json:"amr,omitempty"`
}

func libParse(tok string, k *memKeys, clk *clock) (*libClaims, error) {
	var c libClaims
	_, err := jwt.ParseWithClaims(tok, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		if key := k.key(kid); key != nil {
			return key, nil
		}
		return nil, errors.New("unknown kid")
	}, jwt.WithValidMethods([]string{"HS512"}), jwt.WithIssuer(testIssuer), jwt.WithAudience(testAudience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(30*time.Second), jwt.WithTimeFunc(clk.Now))
	return &c, err
}

func TestIssue_GolangJWTVerifiesOurTokens(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	tok, issued, err := is.Issue(ctx, "user-1", "session-1", []string{"pwd", "otp"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := libParse(tok, k, clk)
	if err != nil {
		t.Fatalf("golang-jwt: %v", err)
	}
	got := Claims{Issuer: c.Issuer, Subject: c.Subject, Session: c.Sid, ID: c.ID, Audience: c.Audience,
		IssuedAt: c.IssuedAt.UTC(), NotBefore: c.NotBefore.UTC(), Expires: c.ExpiresAt.UTC(), AMR: c.AMR}
	if !reflect.DeepEqual(got, issued) {
		t.Fatalf("golang-jwt reads\n %+v\nwant\n %+v", got, issued)
	}
}

func TestVerify_AcceptsGolangJWTTokens(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	k := newMemKeys(t)
	is := newIssuer(t, k, clk)
	now := clk.Now()
	for _, single := range []bool{true, false} { // aud as a string, then as an array
		c := libClaims{RegisteredClaims: jwt.RegisteredClaims{Issuer: testIssuer, Subject: "user-1",
			Audience: jwt.ClaimStrings{testAudience}, ExpiresAt: jwt.NewNumericDate(now.Add(time.Minute)),
			NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now), ID: "jti-1"},
			Sid: "session-1", AMR: []string{"pwd"}}
		tk := jwt.NewWithClaims(jwt.SigningMethodHS512, c)
		tk.Header["kid"] = k.current
		jwt.MarshalSingleStringAsArray = !single // a global: this test is not parallel
		tok, err := tk.SignedString(k.key(k.current))
		jwt.MarshalSingleStringAsArray = true
		if err != nil {
			t.Fatal(err)
		}
		got, err := is.Verify(ctx, tok)
		if err != nil {
			t.Fatalf("aud as a single string %v: Verify: %v", single, err)
		}
		if got.Subject != "user-1" || got.Session != "session-1" || !got.Expires.Equal(now.Add(time.Minute)) {
			t.Fatalf("claims %+v", got)
		}
	}
}
