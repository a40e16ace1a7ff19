package server

import (
	"google.golang.org/grpc/health/grpc_health_v1"

	tvpb "github.com/tokenvault/tokenvault/proto/tokenvault/v1"
	"github.com/tokenvault/tokenvault/vault"
)

// Rule says who may call one RPC.
type Rule struct {
	// Public methods need no credential (health checks).
	Public bool
	// Roles that may call the method. Empty and not Public: nobody.
	Roles []vault.Role
}

// Allows reports whether role may call the method.
func (r Rule) Allows(role vault.Role) bool {
	for _, x := range r.Roles {
		if x == role {
			return true
		}
	}
	return false
}

// Policy is the authorization table, keyed by full gRPC method name. Methods absent from it
// are refused for everyone: adding an RPC without adding it here makes it unusable, and a test
// fails.
//
// With dev set, gRPC server reflection is public too (it is only served in dev mode).
func Policy(dev bool) map[string]Rule {
	admin := vault.RoleAdmin
	internal := []vault.Role{admin, vault.RoleTokenizer, vault.RoleDetokenizer, vault.RoleAuditor}
	p := map[string]Rule{
		tvpb.TokenService_Tokenize_FullMethodName:          {Roles: []vault.Role{admin, vault.RoleTokenizer}},
		tvpb.TokenService_Detokenize_FullMethodName:        {Roles: []vault.Role{admin, vault.RoleDetokenizer}},
		tvpb.TemplateService_CreateTemplate_FullMethodName: {Roles: []vault.Role{admin}},
		tvpb.TemplateService_ListTemplates_FullMethodName:  {Roles: internal},
		grpc_health_v1.Health_Check_FullMethodName:         {Public: true},
		grpc_health_v1.Health_Watch_FullMethodName:         {Public: true},
		grpc_health_v1.Health_List_FullMethodName:          {Public: true},
	}
	if dev {
		p["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] = Rule{Public: true}
		p["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"] = Rule{Public: true}
	}
	return p
}
