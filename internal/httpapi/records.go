package httpapi

import (
	"encoding/json"
	"net/http"

	"bulwark/internal/apperr"
	"bulwark/internal/authz"
	"bulwark/internal/records"
)

// recordHandlers serve the collection and record routes of an org.
// Sensitive fields are shown in clear only to a role with
// records.sensitive, and each such read is audited by package records.
type recordHandlers struct{ recs *records.Service }

// recordRoutes are the collection and record routes on the public
// listener.
func (d Deps) recordRoutes(mux *http.ServeMux) {
	h := recordHandlers{d.Records}
	d.orgRoute(mux, "GET /v1/orgs/{org}/collections", authz.CollectionsRead, h.listCollections)
	d.orgRoute(mux, "POST /v1/orgs/{org}/collections", authz.CollectionsManage, h.createCollection)
	d.orgRoute(mux, "GET /v1/orgs/{org}/collections/{name}", authz.CollectionsRead, h.getCollection)
	d.orgRoute(mux, "PATCH /v1/orgs/{org}/collections/{name}", authz.CollectionsManage, h.updateCollection)
	d.orgRoute(mux, "DELETE /v1/orgs/{org}/collections/{name}", authz.CollectionsManage, h.deleteCollection)
	d.orgRoute(mux, "GET /v1/orgs/{org}/collections/{name}/records", authz.RecordsRead, h.list)
	d.orgRoute(mux, "POST /v1/orgs/{org}/collections/{name}/records", authz.RecordsWrite, h.create)
	d.orgRoute(mux, "GET /v1/orgs/{org}/collections/{name}/records/{id}", authz.RecordsRead, h.get)
	d.orgRoute(mux, "PATCH /v1/orgs/{org}/collections/{name}/records/{id}", authz.RecordsWrite, h.update)
	d.orgRoute(mux, "DELETE /v1/orgs/{org}/collections/{name}/records/{id}", authz.RecordsWrite, h.delete)
}

func (h recordHandlers) listCollections(w http.ResponseWriter, r *http.Request, a access) error {
	limit, after, err := textPage(r)
	if err != nil {
		return err
	}
	list, err := h.recs.Collections(r.Context(), a.Org.ID, limit+1, after)
	if err != nil {
		return err
	}
	var next *string
	if len(list) > limit {
		list = list[:limit]
		c := encodeTextCursor(list[limit-1].Name)
		next = &c
	}
	if list == nil {
		list = []records.Collection{}
	}
	return encode(w, r, http.StatusOK, map[string]any{"items": list, "next_cursor": next})
}

func (h recordHandlers) createCollection(w http.ResponseWriter, r *http.Request, a access) error {
	in, err := decode[records.NewCollection](w, r)
	if err != nil {
		return err
	}
	c, err := h.recs.CreateCollection(r.Context(), a.Src, a.Org.ID, in)
	if err != nil {
		return err
	}
	return encode(w, r, http.StatusCreated, c)
}

func (h recordHandlers) getCollection(w http.ResponseWriter, r *http.Request, a access) error {
	c, err := h.recs.Collection(r.Context(), a.Org.ID, r.PathValue("name"))
	if err != nil {
		return err
	}
	return encode(w, r, http.StatusOK, c)
}

func (h recordHandlers) updateCollection(w http.ResponseWriter, r *http.Request, a access) error {
	in, err := decode[records.CollectionChange](w, r)
	if err != nil {
		return err
	}
	c, err := h.recs.UpdateCollection(r.Context(), a.Src, a.Org.ID, r.PathValue("name"), in)
	if err != nil {
		return err
	}
	return encode(w, r, http.StatusOK, c)
}

func (h recordHandlers) deleteCollection(w http.ResponseWriter, r *http.Request, a access) error {
	if err := h.recs.DeleteCollection(r.Context(), a.Src, a.Org.ID, r.PathValue("name")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h recordHandlers) list(w http.ResponseWriter, r *http.Request, a access) error {
	c, err := h.recs.Collection(r.Context(), a.Org.ID, r.PathValue("name"))
	if err != nil {
		return err
	}
	q, err := records.ParseQuery(c, r.URL.Query())
	if err != nil {
		return err
	}
	page, err := h.recs.List(r.Context(), a.Src, a.Org.ID, c.Name, q, authz.Allowed(a.Role, authz.RecordsSensitive))
	if err != nil {
		return err
	}
	var next *string
	if page.Next != nil {
		s := page.Next.Encode()
		next = &s
	}
	if page.Items == nil {
		page.Items = []records.Record{}
	}
	return encode(w, r, http.StatusOK, map[string]any{"items": page.Items, "next_cursor": next})
}

func (h recordHandlers) create(w http.ResponseWriter, r *http.Request, a access) error {
	body, err := decode[json.RawMessage](w, r)
	if err != nil {
		return err
	}
	rec, err := h.recs.Create(r.Context(), a.Src, a.Org.ID, r.PathValue("name"), body)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", rec.ETag())
	return encode(w, r, http.StatusCreated, rec)
}

func (h recordHandlers) get(w http.ResponseWriter, r *http.Request, a access) error {
	rec, err := h.recs.Get(r.Context(), a.Src, a.Org.ID, r.PathValue("name"), r.PathValue("id"), authz.Allowed(a.Role, authz.RecordsSensitive))
	if err != nil {
		return err
	}
	w.Header().Set("ETag", rec.ETag())
	return encode(w, r, http.StatusOK, rec)
}

func (h recordHandlers) update(w http.ResponseWriter, r *http.Request, a access) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	body, err := decode[json.RawMessage](w, r)
	if err != nil {
		return err
	}
	rec, err := h.recs.Update(r.Context(), a.Src, a.Org.ID, r.PathValue("name"), r.PathValue("id"), version, body)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", rec.ETag())
	return encode(w, r, http.StatusOK, rec)
}

func (h recordHandlers) delete(w http.ResponseWriter, r *http.Request, a access) error {
	version, err := ifMatch(r)
	if err != nil {
		return err
	}
	if err := h.recs.Delete(r.Context(), a.Src, a.Org.ID, r.PathValue("name"), r.PathValue("id"), version); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// ifMatch reads If-Match as a record version: 0 when absent or "*" (any
// version); a value that is not one of our ETags matches nothing
// (precondition_failed), as RFC 9110 says.
func ifMatch(r *http.Request) (int64, error) {
	h := r.Header.Get("If-Match")
	if h == "" || h == "*" {
		return 0, nil
	}
	v, ok := records.ParseETag(h)
	if !ok {
		return 0, apperr.Errorf(apperr.PreconditionFailed, "If-Match does not match the record's ETag")
	}
	return v, nil
}
