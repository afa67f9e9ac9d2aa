package handlers

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"
)

// FieldError names one invalid field of a request and why.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// APIError is an error with a status code and a stable machine-readable
// code. Handlers return it; ErrorHandler turns it into the response.
type APIError struct {
	Status  int          `json:"-"`
	Code    string       `json:"error"`
	Message string       `json:"message,omitempty"`
	Details []FieldError `json:"details,omitempty"`
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }

// NewError returns an APIError.
func NewError(status int, code, message string) *APIError {
	return &APIError{Status: status, Code: code, Message: message}
}

// errorBody is the uniform JSON error body: every error autopatch answers has
// this shape, with the request id to quote when asking for help.
type errorBody struct {
	*APIError
	RequestID string `json:"request_id,omitempty"`
}

// ErrorHandler is the one place errors become responses. Typed API errors
// keep their status and details; Echo's own errors (404, 405, 413) keep their
// status; deadlines map to 503; everything else is a generic 500 whose
// internals go to the log, never to the client.
func ErrorHandler(logger *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		var (
			apiErr  *APIError
			echoErr *echo.HTTPError
		)
		switch {
		case errors.As(err, &apiErr):
		case errors.As(err, &echoErr):
			apiErr = fromEcho(echoErr)
		case errors.Is(err, context.DeadlineExceeded):
			apiErr = NewError(http.StatusServiceUnavailable, "timeout", "the request took too long; try again")
		default:
			apiErr = NewError(http.StatusInternalServerError, "internal_error", "internal error; the request id identifies it in autopatch's log")
		}
		if apiErr.Status >= 500 {
			logger.ErrorContext(c.Request().Context(), "request failed",
				"request_id", requestID(c), "method", c.Request().Method, "path", c.Path(), "error", err)
		}
		body := errorBody{APIError: apiErr, RequestID: requestID(c)}
		if c.Request().Method == http.MethodHead {
			err = c.NoContent(apiErr.Status)
		} else {
			err = c.JSON(apiErr.Status, body)
		}
		if err != nil {
			logger.ErrorContext(c.Request().Context(), "write error response", "error", err)
		}
	}
}

func fromEcho(e *echo.HTTPError) *APIError {
	code := map[int]string{
		http.StatusNotFound:              "not_found",
		http.StatusMethodNotAllowed:      "method_not_allowed",
		http.StatusRequestEntityTooLarge: "body_too_large",
		http.StatusUnsupportedMediaType:  "unsupported_media_type",
		http.StatusUnauthorized:          "unauthorized",
		http.StatusBadRequest:            "bad_request",
		http.StatusServiceUnavailable:    "unavailable",
	}[e.Code]
	if code == "" {
		code = "error"
	}
	msg := http.StatusText(e.Code)
	if m, ok := e.Message.(string); ok && e.Code < 500 {
		msg = m
	}
	return &APIError{Status: e.Code, Code: code, Message: msg}
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}
