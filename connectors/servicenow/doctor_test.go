package servicenow

import (
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheckRead(t *testing.T) {
	t.Parallel()

	t.Run("Readable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		require.NoError(t, b.sim.AddRecord(TableChangeRequest, "0123456789abcdef0123456789abcdef", ""))
		n, err := b.client.CheckRead(t.Context(), TableChangeRequest)
		require.NoError(t, err)
		require.Equal(t, 1, n)
		reqs := b.sim.Requests()
		require.Equal(t, "sysparm_exclude_reference_link=true&sysparm_fields=sys_id&sysparm_limit=1", reqs[len(reqs)-1].Query)
	})
	t.Run("Denied", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.sim.DenyRead(TableIncident)
		_, err := b.client.CheckRead(t.Context(), TableIncident)
		require.ErrorIs(t, err, ErrUnauthorized)
		var api *APIError
		require.True(t, errors.As(err, &api))
		require.Equal(t, http.StatusForbidden, api.Status)
		require.Equal(t, "User Not Authorized", api.Message)
		require.Equal(t, "User is unauthorized to access table: incident", api.Detail)
		// Denied reads are not retried: the doctor wants the first answer.
		require.Equal(t, 1, b.countRequests(http.MethodGet, "/api/now/table/incident"))
	})
	t.Run("NotATable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		_, err := b.client.CheckRead(t.Context(), "incident/../x")
		require.ErrorIs(t, err, ErrInvalid)
	})
}

func TestUserRoles(t *testing.T) {
	t.Parallel()

	t.Run("Default", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		roles, err := b.client.UserRoles(t.Context())
		require.NoError(t, err)
		require.Equal(t, []string{"itil"}, roles)
	})
	t.Run("Granular", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{oauth: true})
		b.sim.SetRoles("sn_incident_write", "sn_change_write", "sn_change_write")
		roles, err := b.client.UserRoles(t.Context())
		require.NoError(t, err)
		require.Equal(t, []string{"sn_change_write", "sn_incident_write"}, roles)
		require.Contains(t, WriteRoles(TableIncident), "sn_incident_write")
		require.Nil(t, WriteRoles("sys_user"))
	})
	t.Run("Unreadable", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		b.sim.DenyRead(TableUserRoles)
		_, err := b.client.UserRoles(t.Context())
		require.ErrorIs(t, err, ErrUnauthorized)
	})
}
